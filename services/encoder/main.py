"""The encoder service (the sender). This module only wires: `create_app(settings)` and `main(argv)`."""

from __future__ import annotations

from fastapi import FastAPI

from services.encoder import api
from services.encoder.settings import EncoderSettings
from shared.codec.encoder import load_encoder
from shared.service.app import build_app
from shared.service.runtime import HalfSpec
from shared.service.serve import serve
from shared.service.settings import load_settings

SPEC = HalfSpec("encoder", load_encoder, lambda config: config.input_shape)
DESCRIPTION = (
    "The sender half of aelink: turns digits into compact latent codes. 28x28 grayscale images are taken as"
    " they are; PNG, JPEG or WebP files of any other size are first fitted to MNIST form. It holds only"
    " the encoder weights; POST the codes it returns, unchanged, to the decoder service's /v1/decode."
)


def create_app(settings: EncoderSettings | None = None) -> FastAPI:
    return build_app(SPEC, settings or load_settings(EncoderSettings), [api.router],
                     title="aelink encoder", description=DESCRIPTION)


def main(argv: list[str] | None = None) -> int:
    return serve(EncoderSettings, create_app, argv, prog="aelink-encoder")
