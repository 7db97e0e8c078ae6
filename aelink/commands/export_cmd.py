"""`aelink export`: split a training checkpoint into encoder.safetensors and decoder.safetensors."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("export", help="split a checkpoint into the two weight halves", description=__doc__)
    p.add_argument("checkpoint", type=Path, help="checkpoint.pt written by `aelink train`")
    p.add_argument("--out", type=Path, help="folder for the halves (default: the checkpoint's folder)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from aelink.training.export import export_checkpoint

    out = args.out or args.checkpoint.parent
    fingerprint = export_checkpoint(args.checkpoint, out)
    print(f"wrote {out}/encoder.safetensors and {out}/decoder.safetensors (pair {fingerprint})")
    return 0
