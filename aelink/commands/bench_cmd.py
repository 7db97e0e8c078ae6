"""`aelink bench`: benchmarks that print their figures (training speed; bytes against quality)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from aelink.commands.common import add_data_args, int_list
from shared.codec.config import PRESETS


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
    t = kinds.add_parser("train", help="aelink's training against the article's Keras model, in one run",
                         description="Train the seed preset and the article's Keras model epoch by epoch in "
                         "turn, then the other presets; print seconds per epoch, validation BCE and PSNR, "
                         "the ratios and the machine.")
    t.add_argument("--epochs", type=int, default=2, help="epochs of each (default: 2)")
    t.add_argument("--preset", action="append", choices=sorted(PRESETS),
                   help="presets to time (repeatable; the first runs beside Keras; default: seed, compact32, rd16)")
    t.add_argument("--keras-python", default=os.environ.get("AELINK_KERAS_PYTHON", sys.executable),
                   help="the interpreter that runs the Keras script (default: $AELINK_KERAS_PYTHON, else this one)")
    t.add_argument("--no-keras", action="store_true", help="time aelink only")
    t.add_argument("--train-subset", type=int, help="only the first N training images (quick runs)")
    t.add_argument("--test-subset", type=int, help="validate on only the first N test images")
    t.add_argument("--threads", type=int, help="CPU threads for both libraries (default: each one's choice)")
    t.add_argument("--processes", type=int, default=1,
                   help="train aelink under torchrun with this many processes of one thread (default: 1, in process)")
    t.add_argument("--bf16", action="store_true", help="aelink trains with bf16 autocast (`aelink train --bf16`)")
    t.add_argument("--json", action="store_true", help="print the measurements as JSON")
    add_data_args(t)
    t.set_defaults(run=run_train)
    r = kinds.add_parser("rd", help="bytes per image against PSNR and SSIM: our codecs, PCA, PNG, WebP, JPEG",
                         description="Measure, in one run on the test images, bytes per image against PSNR and"
                         " SSIM; write rd.csv, rd.json and rd.png.")
    r.add_argument("--weights-root", type=Path, default=Path("weights"),
                   help="every model folder under it (rd and compact models; default: weights)")
    r.add_argument("--weights", type=Path, action="append", default=[], help="another model folder (repeatable)")
    r.add_argument("--pca", type=int_list, default=(16, 32, 64), help="PCA code sizes (default: 16,32,64)")
    r.add_argument("--limit", type=int, help="only the first N test images (default: all 10,000)")
    r.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    r.add_argument("--out", type=Path, default=Path("out/bench_rd"), help="folder for rd.csv, rd.json, rd.png")
    add_data_args(r)
    r.set_defaults(run=run_rd)


def run_speed(args: argparse.Namespace) -> int:
    import torch

    from aelink.measure.bench_speed import bench_speed

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


def run_train(args: argparse.Namespace) -> int:
    from aelink.measure.bench_train import bench_train, format_report

    if args.dataset != "mnist":
        raise ValueError("bench train compares with the article's model on MNIST only")
    log = (lambda line: print(line, file=sys.stderr)) if args.json else print
    result = bench_train(args.preset or ["seed", "compact32", "rd16"], args.epochs,
                         keras_python=None if args.no_keras else args.keras_python,
                         train_subset=args.train_subset, test_subset=args.test_subset,
                         data_dir=args.data_dir, threads=args.threads, processes=args.processes,
                         bf16=args.bf16, log=log)
    print(json.dumps(result, indent=1) if args.json else format_report(result))
    return 0


def run_rd(args: argparse.Namespace) -> int:
    import torch

    from aelink.data.datasets import load_split, to_tensor
    from aelink.measure.bench_rd import bench_rd, format_table, model_folders, write_outputs

    torch.set_num_threads(args.threads)
    train = to_tensor(load_split("train", args.data_dir, args.dataset)[0])
    test = to_tensor(load_split("test", args.data_dir, args.dataset)[0][: args.limit])
    folders = model_folders(args.weights_root, args.weights)
    points = bench_rd(train, test, folders, list(args.pca))
    print(format_table(points))
    paths = write_outputs(points, args.out, len(test))
    print(f"{len(test):,} test images; wrote " + ", ".join(map(str, paths)))
    return 0
