"""`aelink eval`: score a pair of weight halves on the test set, beside a PCA baseline."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from aelink.commands.common import add_data_args, add_judge_arg, judge_for, train_and_test


def register(sub) -> None:
    p = sub.add_parser("eval", help="evaluate weights on the test set", description=__doc__)
    p.add_argument("--weights", type=Path, required=True, help="folder with encoder/decoder.safetensors")
    p.add_argument("--noise", type=float, help="input noise sigma (default: the model's training noise)")
    p.add_argument("--limit", type=int, help="only the first N test images (default: all 10,000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the input noise")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_data_args(p)
    add_judge_arg(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from aelink.measure.evaluate import evaluate, format_table

    train, test, labels = train_and_test(args, args.limit)
    judge = judge_for(args, test, labels)
    rows, info = evaluate(args.weights, train, test, args.noise, args.seed, judge)
    if args.json:
        print(json.dumps({**info, "rows": [r.as_dict() for r in rows]}, indent=1))
    else:
        print(f"{info['model']} on {info['images']} {args.dataset} test images"
              + (f", input noise sigma {info['noise']}" if info["noise"] else ""))
        if judge is not None:
            print(f"judge {args.judge}: {judge.original_accuracy:.2f}% on the originals")
        print(format_table(rows))
    return 0
