"""`aelink prior fit`: give a vae run a mixture prior fitted to its training codes, and write both halves."""

from __future__ import annotations

import argparse
from pathlib import Path

from aelink.commands.common import add_data_args


def register(sub) -> None:
    p = sub.add_parser("prior", help="a vae's fitted prior, the one its decoder samples from", description=__doc__)
    actions = p.add_subparsers(dest="prior", required=True, metavar="ACTION")
    f = actions.add_parser(
        "fit", help="fit a Gaussian mixture to a vae run's training codes; write both halves",
        description="Load a vae run's checkpoint, set its prior_components, fit a full-covariance Gaussian "
        "mixture to the training images' codes (the posterior means, as sent) and write encoder.safetensors "
        "and decoder.safetensors: the config and pair fingerprint change in both halves alike.")
    f.add_argument("checkpoint", type=Path, help="a run folder or its checkpoint.pt (written by `aelink train`)")
    f.add_argument("--components", type=int, default=50, help="mixture components (default: 50)")
    f.add_argument("--out", type=Path, help="folder for the halves (default: the checkpoint's folder)")
    f.add_argument("--seed", type=int, help="the fit's random_state (default: the run's training seed)")
    add_data_args(f)
    f.set_defaults(run=run_fit)


def run_fit(args: argparse.Namespace) -> int:
    from aelink.training.mixture import fit_checkpoint

    fingerprint, config, _ = fit_checkpoint(args.checkpoint, args.components, args.out, data_dir=args.data_dir,
                                            dataset=args.dataset, seed=args.seed)
    out = args.out or (args.checkpoint if args.checkpoint.is_dir() else args.checkpoint.parent)
    print(f"wrote {out}/encoder.safetensors and {out}/decoder.safetensors ({config.name}, prior_components"
          f" {config.prior_components}, pair {fingerprint})")
    return 0
