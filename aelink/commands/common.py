"""Arguments several subcommands share."""

from __future__ import annotations

import argparse
from pathlib import Path

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


def add_judge_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--judge", type=Path, default=Path("weights/classifier/classifier.safetensors"),
                   help="the digit classifier that judges reconstructions (MNIST only; `--judge none`: no judge)")


def judge_for(args: argparse.Namespace, test, labels):
    """The judge of these test images, or None (not MNIST, `--judge none`, or no classifier file: said)."""
    import sys

    if args.dataset != "mnist" or str(args.judge) == "none":
        return None
    if not args.judge.is_file():
        print(f"note: no judge at {args.judge} (train one with `aelink classifier train`): no accuracy figures",
              file=sys.stderr)
        return None
    from aelink.judge.score import load_judge

    return load_judge(args.judge, test, torch_labels(labels))


def torch_labels(labels):
    import torch

    return torch.from_numpy(labels.astype("int64"))


def train_and_test(args: argparse.Namespace, limit: int | None = None):
    """The training images, the first `limit` test images (all by default) and their labels, for the
    commands that measure a model: float32 (N,1,28,28) tensors in [0,1] and uint8 labels."""
    from aelink.data.datasets import load_split, to_tensor

    train = to_tensor(load_split("train", args.data_dir, args.dataset)[0])
    images, labels = load_split("test", args.data_dir, args.dataset)
    return train, to_tensor(images[:limit]), labels[:limit]
