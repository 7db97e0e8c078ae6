"""`aelink send`: encode digit images (PNG, JPEG, WebP) on the encoder service, decode the codes on the
decoder service, write the reconstructions, the figure and a summary (bytes on the wire, PSNR)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from shared.codec import wire


def add_link_args(p: argparse.ArgumentParser, encoder: str | None, decoder: str | None) -> None:
    """The service URLs and how codes travel; shared with `aelink demo`."""
    local = "start one locally"
    p.add_argument("--encoder", default=encoder, help=f"encoder service URL (default: {encoder or local})")
    p.add_argument("--decoder", default=decoder, help=f"decoder service URL (default: {decoder or local})")
    p.add_argument("--format", choices=sorted(wire.FORMATS),
                   help="code format on the wire (default: the model's, rc for rd models, else f32)")
    p.add_argument("--token", default=os.environ.get("AELINK_TOKEN"),
                   help="bearer token, for services that require one (default: $AELINK_TOKEN)")
    p.add_argument("--retry-for", type=float, default=30.0, metavar="SECONDS",
                   help="keep retrying a busy (503) or unreachable service for up to this long (default: 30;"
                   " 0: no retries)")


def register(sub) -> None:
    p = sub.add_parser("send", help="send digit images from the encoder service to the decoder service",
                       description=__doc__)
    p.add_argument("images", nargs="+", type=Path, help="PNG, JPEG or WebP files: 28x28 8-bit ones are sent as they"
                   " are, others the encoder fits to MNIST form")
    add_link_args(p, "http://127.0.0.1:8001", "http://127.0.0.1:8002")
    p.add_argument("--out", type=Path, default=Path("out/send"), help="output folder (default: out/send)")
    p.set_defaults(run=run)


def send_and_report(encoder: str, decoder: str, images: list[Path], fmt: str | None, token: str | None,
                    out: Path, retry_for: float = 30.0) -> int:
    from aelink.client import CodecClient, ServiceError, format_summary, send, write_outputs
    from aelink.http_calls import NO_RETRY, RetryPolicy

    retry = RetryPolicy(within=retry_for) if retry_for > 0 else NO_RETRY
    try:
        with CodecClient(encoder, decoder, token=token, retry=retry) as client:
            result = send(client, images, fmt)
    except ServiceError as e:
        print(f"aelink: error: {e}", file=sys.stderr)
        return 1
    summary = write_outputs(result, out)
    print(format_summary(summary))
    print(f"wrote {out / 'figure.png'}, {out / 'reconstructions'}/ and {out / 'summary.json'}")
    return 0


def run(args: argparse.Namespace) -> int:
    return send_and_report(args.encoder, args.decoder, args.images, args.format, args.token, args.out,
                           args.retry_for)
