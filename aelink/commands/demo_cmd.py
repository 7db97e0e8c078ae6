"""`aelink demo`: start the encoder and decoder services as real uvicorn processes on free loopback
ports, send a sample of MNIST test digits from the sender to the receiver, write the figure and the
reconstructions, print the summary, and stop both services. With --encoder and --decoder it uses
running services instead (as the compose demo container does). With --web it starts a pair per model
and serves the drawing page for them instead (see `aelink web`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from aelink.commands.common import add_data_args
from aelink.commands.send_cmd import add_link_args, send_and_report
from aelink.commands.web_cmd import DEFAULT_MODELS, add_page_args, demo_web


def register(sub) -> None:
    p = sub.add_parser("demo", help="sender-to-receiver demo on MNIST test digits", description=__doc__)
    p.add_argument("--count", type=int, default=10, help="how many test digits to send (default: 10)")
    p.add_argument("--seed", type=int, default=0, help="which digits: a seeded random sample")
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder (default: out/demo)")
    p.add_argument("--model", help="model for the local services (default: their own, rd64)")
    p.add_argument("--weights-dir", type=Path, help="weights folder for the local services (default: weights/)")
    add_link_args(p, None, None)
    add_data_args(p)
    web = p.add_argument_group("the drawing page (--web)")
    web.add_argument("--web", action="store_true", help="instead: start a pair of services per model of --models"
                     " and serve the drawing page for them, until Ctrl-C")
    web.add_argument("--models", default=DEFAULT_MODELS, help=f"models the page offers (default: {DEFAULT_MODELS})")
    add_page_args(web)
    p.set_defaults(run=run)


def write_sample(args: argparse.Namespace) -> list[Path]:
    """Seeded sample of test digits, written as the PNG files the sender starts from."""
    from aelink.data.datasets import load_split
    from shared.service.images import pixels_to_png

    if not 1 <= args.count <= 10000:
        raise ValueError(f"--count must be 1..10000, not {args.count}")
    images, labels = load_split("test", args.data_dir, args.dataset)
    picks = np.sort(np.random.default_rng(args.seed).choice(len(images), args.count, replace=False))
    folder = args.out / "originals"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):  # a previous, larger run must not leave extra digits behind
        old.unlink()
    paths = []
    for i in picks:
        path = folder / f"test{i:05d}_label{labels[i]}.png"
        path.write_bytes(pixels_to_png(images[i]))
        paths.append(path)
    return paths


def local_env(args: argparse.Namespace) -> dict[str, str]:
    env = {}
    for half in ("ENCODER", "DECODER"):
        if args.model:
            env[f"AELINK_{half}_MODEL"] = args.model
        if args.weights_dir:
            env[f"AELINK_{half}_WEIGHTS_DIR"] = str(args.weights_dir.resolve())
    return env


def run(args: argparse.Namespace) -> int:
    from aelink.client import ServiceError, local_services

    if args.web:
        return demo_web(args)
    paths = write_sample(args)
    if bool(args.encoder) != bool(args.decoder):
        raise ValueError("give both --encoder and --decoder, or neither to start local services")
    if args.encoder:
        return send_and_report(args.encoder, args.decoder, paths, args.format, args.token, args.out, args.retry_for)
    print("starting the encoder and decoder services on loopback ...", flush=True)
    try:
        with local_services(local_env(args)) as (encoder, decoder):
            print(f"encoder {encoder.url}, decoder {decoder.url}: ready", flush=True)
            code = send_and_report(encoder.url, decoder.url, paths, args.format, args.token, args.out, args.retry_for)
    except ServiceError as e:
        print(f"aelink demo: error: {e}", file=sys.stderr)
        return 1
    print("stopped both services")
    return code
