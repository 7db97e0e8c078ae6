"""`aelink card`: evaluate every model under a weights folder and write the model card and metrics."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from aelink.commands.common import add_data_args, add_judge_arg, judge_for, train_and_test


def register(sub) -> None:
    p = sub.add_parser("card", help="measure the shipped models and write MODEL_CARD.md", description=__doc__)
    p.add_argument("--weights-root", type=Path, default=Path("weights"))
    add_data_args(p)
    add_judge_arg(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from aelink.measure.card import measure, render

    train, test, labels = train_and_test(args)
    entries = measure(args.weights_root, train, test, judge_for(args, test, labels))
    (args.weights_root / "metrics.json").write_text(json.dumps(entries, indent=1) + "\n")
    (args.weights_root / "MODEL_CARD.md").write_text(render(entries, args.dataset))
    print(f"wrote {args.weights_root}/MODEL_CARD.md and metrics.json ({len(entries)} models)")
    return 0
