"""`aelink data`: fetch (download missing files from the public mirrors) or verify the dataset."""

from __future__ import annotations

import argparse

from aelink.commands.common import add_data_args


def register(sub) -> None:
    p = sub.add_parser("data", help="fetch or verify the dataset files", description=__doc__)
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    f = actions.add_parser("fetch", help="download missing files, verify all (SHA-256)")
    f.add_argument("--mirror", action="append", help="base URL to try (repeatable; default: public mirrors)")
    f.add_argument("--force", action="store_true", help="download files that fail verification again")
    f.add_argument("--timeout", type=float, default=60.0, help="seconds per HTTP request")
    v = actions.add_parser("verify", help="check every file's header, sizes and SHA-256")
    for q in (f, v):
        add_data_args(q)
    f.set_defaults(run=run_fetch)
    v.set_defaults(run=run_verify)


def run_fetch(args: argparse.Namespace) -> int:
    from aelink.data.datasets import resolve_data_dir
    from aelink.data.fetch import fetch

    root = resolve_data_dir(args.data_dir, args.dataset)
    fetch(root, args.dataset, args.mirror, force=args.force, timeout=args.timeout)
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from aelink.data.datasets import load_split, resolve_data_dir

    root = resolve_data_dir(args.data_dir, args.dataset)
    for split in ("train", "test"):
        images, _ = load_split(split, root, args.dataset)
        print(f"ok  {split}: {len(images)} images and labels in {root}")
    return 0
