"""Answer a decode request in the form the client accepts: JSON, one PNG, or raw N x 784 bytes."""

from __future__ import annotations

import base64

import numpy as np
from fastapi import Response

from services.decoder.schemas import DecodeResponse
from shared.service.images import pixels_to_png
from shared.service.problems import Problem

JSON, PNG, OCTET = "application/json", "image/png", "application/octet-stream"
OFFERS = [JSON, PNG, OCTET]


def check_answerable(answer: str, count: int) -> None:
    if answer == PNG and count != 1:
        raise Problem(406, "not-acceptable", f"image/png holds one image but there are {count} codes;"
                      " accept application/json or application/octet-stream for several")


def respond(answer: str, images: np.ndarray, model: str, fingerprint: str, with_pixels: bool,
            json_model: type[DecodeResponse] = DecodeResponse, **extra) -> Response:
    """`images` is uint8 (N,28,28); the answer is framed to bytes here, in the caller's (worker) thread.
    The JSON form is `json_model` (a DecodeResponse with `extra` fields, for the drawing endpoints)."""
    if answer == PNG:
        return Response(pixels_to_png(images[0]), media_type=PNG)
    if answer == OCTET:
        return Response(np.ascontiguousarray(images).tobytes(), media_type=OCTET)
    pngs = [base64.b64encode(pixels_to_png(img)).decode("ascii") for img in images]
    body = json_model(model=model, fingerprint=fingerprint, count=len(images), images=pngs,
                      pixels=images.tolist() if with_pixels else None, **extra)
    return Response(body.model_dump_json(exclude_none=True), media_type=JSON)
