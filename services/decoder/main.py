"""The decoder service (the receiver). This module only wires: `create_app(settings)` and `main(argv)`."""

from __future__ import annotations

from fastapi import FastAPI

from services.decoder import api, draw
from services.decoder.settings import DecoderSettings
from shared.codec.decoder import load_decoder
from shared.service.app import build_app
from shared.service.runtime import HalfSpec
from shared.service.serve import serve
from shared.service.settings import load_settings

SPEC = HalfSpec("decoder", load_decoder, lambda config: config.code_shape)
DESCRIPTION = (
    "The receiver half of aelink: rebuilds 28x28 digits from the codes the encoder service made. It"
    " holds only the decoder weights and refuses (409) codes made by any other weights."
)


def create_app(settings: DecoderSettings | None = None) -> FastAPI:
    return build_app(SPEC, settings or load_settings(DecoderSettings), [api.router, draw.router],
                     title="aelink decoder", description=DESCRIPTION)


def main(argv: list[str] | None = None) -> int:
    return serve(DecoderSettings, create_app, argv, prog="aelink-decoder")
