"""`aelink serve encoder|decoder`: run one service with uvicorn (settings from AELINK_<HALF>_* too)."""

from __future__ import annotations

import argparse
import os
import sys


def register(sub) -> None:
    from shared.service.serve import add_serve_args

    p = sub.add_parser("serve", help="run the encoder or the decoder service", description=__doc__)
    p.add_argument("half", choices=("encoder", "decoder"), help="which service to run")
    add_serve_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    argv = [sys.executable, "-m", f"services.{args.half}"]
    for flag in ("host", "port", "model", "weights_dir"):
        value = getattr(args, flag)
        if value is not None:
            argv += [f"--{flag.replace('_', '-')}", str(value)]
    # A fresh interpreter, not an import: this process has loaded every command module, and the
    # encoder service must hold no decoder code (nor the other way round).
    os.execv(sys.executable, argv)
    return 0  # not reached
