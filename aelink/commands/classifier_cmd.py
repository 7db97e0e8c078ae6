"""`aelink classifier`: train the judge (a small digit classifier) and measure it on the test images."""

from __future__ import annotations

import argparse
from pathlib import Path

from aelink.commands.common import add_data_args


def register(sub) -> None:
    p = sub.add_parser("classifier", help="the digit classifier that judges codecs", description=__doc__)
    kinds = p.add_subparsers(dest="classifier", required=True, metavar="ACTION")
    t = kinds.add_parser("train", help="train it on the training images; its test accuracy goes in the file")
    t.add_argument("--out", type=Path, default=Path("weights/classifier/classifier.safetensors"))
    t.add_argument("--epochs", type=int, default=8)
    t.add_argument("--batch-size", type=int, default=128)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--shift", type=int, default=2, help="random shifts of up to this many pixels (0: none)")
    t.add_argument("--train-subset", type=int, help="only the first N training images")
    t.add_argument("--threads", type=int, help="torch CPU threads")
    add_data_args(t)
    t.set_defaults(run=run_train)
    e = kinds.add_parser("eval", help="its accuracy on the test images, measured now")
    e.add_argument("--weights", type=Path, default=Path("weights/classifier/classifier.safetensors"))
    e.add_argument("--limit", type=int, help="only the first N test images")
    add_data_args(e)
    e.set_defaults(run=run_eval)


def load_labelled(split: str, args: argparse.Namespace, limit: int | None = None):
    import torch

    from aelink.data.datasets import load_split, to_tensor

    images, labels = load_split(split, args.data_dir, args.dataset)
    return to_tensor(images[:limit]), torch.from_numpy(labels[:limit].astype("int64"))


def run_train(args: argparse.Namespace) -> int:
    from aelink.judge.train import ClassifierOptions, train_classifier

    opts = ClassifierOptions(out=args.out, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                             seed=args.seed, shift=args.shift, train_subset=args.train_subset, threads=args.threads)
    _, info = train_classifier(*load_labelled("train", args), *load_labelled("test", args), opts)
    print(f"wrote {args.out}: {info['test_accuracy']:.2f}% on the {info['test_images']:,} test images")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from aelink.judge.net import load_classifier
    from aelink.judge.score import accuracy

    judge, info = load_classifier(args.weights)
    x, y = load_labelled("test", args, args.limit)
    print(f"{args.weights}: {accuracy(judge.predict(x), y):.2f}% on {len(x):,} test images"
          f" (recorded at training: {info.get('test_accuracy', float('nan')):.2f}% on {info.get('test_images')})")
    return 0
