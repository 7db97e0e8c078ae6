"""Arguments several subcommands share."""

from __future__ import annotations

import argparse

from aelink.data.datasets import DATASETS


def add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="folder with the four IDX files (default: $AELINK_DATA_DIR, "
                   "then the distribution's copy, then ./data/<dataset>)")
    p.add_argument("--dataset", default="mnist", choices=sorted(DATASETS))


def int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
