"""`aelink`: the command-line tool. Each subcommand lives in its own module; this file only wires."""

from __future__ import annotations

import argparse
import os
import sys

from shared import __version__

TRAIN_EXTRA = {"tqdm", "pytorch_msssim", "matplotlib", "sklearn"}  # pyproject's `train` extra, by module name


def build_parser() -> argparse.ArgumentParser:
    from aelink.commands import (
        bench_cmd,
        card_cmd,
        classifier_cmd,
        data_cmd,
        demo_cmd,
        draw_cmd,
        eval_cmd,
        export_cmd,
        prior_cmd,
        send_cmd,
        serve_cmd,
        train_cmd,
        web_cmd,
    )

    parser = argparse.ArgumentParser(prog="aelink", description="A learned image codec for MNIST digits.")
    parser.add_argument("--version", action="version", version=f"aelink {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (data_cmd, train_cmd, eval_cmd, card_cmd, export_cmd, prior_cmd, serve_cmd, send_cmd, demo_cmd,
                   web_cmd, bench_cmd, classifier_cmd, draw_cmd):
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Training, before torch loads OpenMP: threads that wait for work sleep instead of spinning. On a
    # busy machine a spinning thread holds the core its descheduled peer needs: a seed training step
    # took 1.3 s with two spinning threads at load 14 on 2 cores, 0.17 s with passive ones.
    if (sys.argv[1:] if argv is None else argv)[:1] in (["train"], ["bench"]):
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except ModuleNotFoundError as e:
        if e.name not in TRAIN_EXTRA:
            raise
        # the base install is what serving needs; training, evaluation and benchmarks are an extra
        print(f"aelink {args.command}: needs {e.name}, from the train extra: pip install 'aelink[train]'",
              file=sys.stderr)
        return 2
    except (ValueError, OSError) as e:  # our errors are ValueErrors that name the file and problem
        print(f"aelink {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
