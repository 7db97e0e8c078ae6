"""`aelink sample` and `aelink interpolate`: the decoder service draws digits; save them as a figure."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from aelink.commands.common import add_data_args


def add_service_args(p: argparse.ArgumentParser, halves: str) -> None:
    p.add_argument("--decoder", help="decoder service URL (default: start one locally for this command)")
    if "encoder" in halves:
        p.add_argument("--encoder", help="encoder service URL (default: start one locally)")
    p.add_argument("--model", help="locally started services: the model to serve (default: theirs)")
    p.add_argument("--weights-dir", type=Path, help="locally started services: the weights folder")
    p.add_argument("--token", default=os.environ.get("AELINK_TOKEN"), help="bearer token (default: $AELINK_TOKEN)")


def register(sub) -> None:
    s = sub.add_parser("sample", help="draw new digits from a vae decoder's prior", description=__doc__)
    s.add_argument("-n", type=int, default=64, help="digits to draw (default: 64)")
    s.add_argument("--seed", type=int, help="the same seed draws the same digits (default: the service picks)")
    s.add_argument("--temperature", type=float, default=1.0, help="scales the prior's spread (default: 1)")
    s.add_argument("--prior", choices=["fitted", "standard"],
                   help="fitted: the Gaussian mixture fitted to the model's training codes; standard: N(0, I)"
                   " (default: the model's, fitted if it has one)")
    s.add_argument("--columns", type=int, default=8)
    s.add_argument("--out", type=Path, default=Path("out/samples.png"), help="the grid, a PNG")
    add_service_args(s, "decoder")
    s.set_defaults(run=run_sample, model="vae32")
    i = sub.add_parser("interpolate", help="images along the line between two digits' codes",
                       description="Encode two digits, then ask the decoder for the images between their codes.")
    i.add_argument("pngs", nargs="*", type=Path, help="two 28x28 PNG files (or --test I J)")
    i.add_argument("--test", type=int, nargs=2, metavar=("I", "J"), help="two MNIST test images by index")
    i.add_argument("--steps", type=int, default=10, help="images, both ends included (default: 10)")
    i.add_argument("--format", help="code format (default: the model's)")
    i.add_argument("--out", type=Path, default=Path("out/interpolation.png"), help="the strip, a PNG")
    add_service_args(i, "encoder decoder")
    add_data_args(i)
    i.set_defaults(run=run_interpolate)


def run_sample(args: argparse.Namespace) -> int:
    import sys

    from aelink.draw import save_grid, services
    from aelink.http_calls import ServiceError

    try:
        with services(None, args.decoder, ("decoder",), args.model, args.weights_dir, args.token) as client:
            images, seed, prior = client.sample(args.n, args.seed, args.temperature, args.prior)
            model = client.model("decoder")
    except ServiceError as e:  # e.g. 409: the model has no prior, or not the fitted one asked for
        print(f"aelink sample: error: {e}", file=sys.stderr)
        return 1
    save_grid(images, args.columns, args.out)
    print(f"{len(images)} digits from {model['name']} (fingerprint {model['fingerprint']}), {prior} prior, seed"
          f" {seed}, temperature {args.temperature:g}: wrote {args.out}")
    return 0


def end_images(args: argparse.Namespace) -> list[tuple[str, bytes]]:
    """The two digits as (name, PNG bytes): files, or MNIST test images."""
    if args.test:
        from aelink.data.datasets import load_split
        from shared.service.images import pixels_to_png

        images = load_split("test", args.data_dir, args.dataset)[0]
        return [(f"test{i}.png", pixels_to_png(images[i])) for i in args.test]
    if len(args.pngs) != 2:
        raise ValueError("give two PNG files or --test I J")
    return [(p.name, p.read_bytes()) for p in args.pngs]


def run_interpolate(args: argparse.Namespace) -> int:
    import numpy as np

    from aelink.draw import services
    from aelink.figure import save_figure
    from shared.service.images import png_to_pixels, to_uint8

    ends = end_images(args)
    with services(args.encoder, args.decoder, ("encoder", "decoder"), args.model, args.weights_dir,
                  args.token) as client:
        codes, encoded, _ = client.encode_files(ends, args.format)  # encoded: the 28x28 PNGs it coded
        images = client.interpolate(codes, args.steps)
        model = client.model("decoder")
    # the two originals above the two ends of the strip; white tiles between vanish on the white page
    originals = np.full_like(images, 255)
    originals[0], originals[-1] = (to_uint8(png_to_pixels(data, name))[0]
                                   for (name, _), data in zip(ends, encoded, strict=True))
    save_figure([originals, images], ["originals", f"{model['name']}, {args.steps} steps"], args.out)
    print(f"{args.steps} images from {ends[0][0]} to {ends[1][0]} through {model['name']}: wrote {args.out}")
    return 0
