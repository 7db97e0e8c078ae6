"""`aelink bench`: benchmarks that print their figures (training speed)."""

from __future__ import annotations

import argparse
import json

from shared.config import PRESETS


def register(sub) -> None:
    p = sub.add_parser("bench", help="benchmarks", description=__doc__)
    kinds = p.add_subparsers(dest="bench", required=True, metavar="BENCH")
    s = kinds.add_parser("speed", help="seconds per training epoch (median of timed steps)")
    s.add_argument("--preset", action="append", choices=sorted(PRESETS), help="default: seed")
    s.add_argument("--batch-size", type=int, default=128)
    s.add_argument("--steps", type=int, default=30, help="timed steps per repeat")
    s.add_argument("--repeats", type=int, default=3)
    s.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(run=run_speed)


def run_speed(args: argparse.Namespace) -> int:
    import torch

    from shared.bench import bench_speed

    if args.threads:
        torch.set_num_threads(args.threads)
    rows = bench_speed(args.preset or ["seed"], args.batch_size, args.steps, args.repeats)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'preset':<10} {'variant':<19} {'threads':>7} {'ms/step':>8} {'s/epoch':>8}")
    for r in rows:
        print(f"{r['preset']:<10} {r['variant']:<19} {r['threads']:>7} {r['ms_per_step']:>8.1f} {r['s_per_epoch']:>8.1f}")
    print(f"s/epoch = median ms/step x {-(-60000 // args.batch_size)} steps (60,000 images, batch {args.batch_size})")
    return 0
