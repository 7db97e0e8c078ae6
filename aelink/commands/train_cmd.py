"""`aelink train`: train a preset (optionally with its hyperparameters changed) into a run folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from aelink.commands.common import add_data_args, int_list
from shared.codec.config import LATENTS, LOSSES, PRESETS, preset


def register(sub) -> None:
    p = sub.add_parser("train", help="train an autoencoder", description=__doc__)
    p.add_argument("--preset", default="compact32", choices=sorted(PRESETS))
    p.add_argument("--name", help="model name (default: the preset's)")
    p.add_argument("--code-size", type=int, help="latent dimensions (compact models)")
    p.add_argument("--widths", type=int_list, help="channels per stage, e.g. 32,64,128 (depth = count)")
    p.add_argument("--blocks", type=int, help="residual blocks per stage, in encoder and decoder")
    p.add_argument("--loss", choices=LOSSES)
    p.add_argument("--noise", type=float, help="train to denoise inputs with this Gaussian sigma")
    p.add_argument("--lmbda", type=float, help="rd models: loss = distortion + LMBDA * bits, per image")
    p.add_argument("--beta", "--kl-weight", dest="beta", type=float,
                   help="vae models: loss = reconstruction + BETA * KL, per image (default 1: a true VAE)")
    p.add_argument("--prior-components", type=int,
                   help="vae models: fit a Gaussian mixture of this many components to the training codes"
                   " at the end, the prior the decoder samples from (0: N(0, I))")
    p.add_argument("--latent", choices=LATENTS, help="rd models: a vector latent or a spatial map")
    p.add_argument("--noise-once", action="store_true", help="draw the training noise once, not per batch")
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lr-schedule", choices=["constant", "cosine"], default="constant",
                   help="constant (the spec) or cosine decay to 0 over the run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-subset", type=int, help="use only the first N training images")
    p.add_argument("--test-subset", type=int, help="validate on only the first N test images")
    p.add_argument("--threads", type=int, help="CPU threads (default: the cores this process may use)")
    p.add_argument("--shards", type=int,
                   help="threads each batch splits over, each running a whole forward and backward on its part "
                   "(default: one per CPU thread; 1 under torchrun)")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                   help="bf16 autocast for the training steps (default: on for the seed kind on CPUs with AVX-512 "
                   "BF16, where it is faster and learned as much as fp32; off otherwise)")
    p.add_argument("--fused", action=argparse.BooleanOptionalAction, default=True,
                   help="fused CPU kernels for the layers that have them, built at first use with the machine's C++ "
                   "compiler (default: on; off, or no compiler: PyTorch's ops)")
    p.add_argument("--out", type=Path, help="run folder (default: runs/<name>)")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    add_data_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from aelink.training.train import TrainOptions, train

    config = preset(args.preset).with_(
        name=args.name, code_size=args.code_size, widths=args.widths, blocks=args.blocks, loss=args.loss,
        noise=args.noise, lmbda=args.lmbda, latent=args.latent, beta=args.beta,
        prior_components=args.prior_components,
    )
    opts = TrainOptions(
        out=args.out or Path("runs") / config.name, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr, lr_schedule=args.lr_schedule, seed=args.seed, noise_once=args.noise_once,
        train_subset=args.train_subset, test_subset=args.test_subset, data_dir=args.data_dir,
        dataset=args.dataset, resume=args.resume, threads=args.threads, shards=args.shards, progress=args.progress,
        bf16=args.bf16, fused=args.fused,
    )
    train(config, opts)
    return 0
