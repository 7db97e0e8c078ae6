"""POST /v1/encode: images in, codes out."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Literal

import numpy as np
from fastapi import APIRouter, Query, Request, Response

from services.encoder.inputs import FORMS, read_images
from services.encoder.schemas import EncodeRequest, EncodeResponse
from shared.codec import wire
from shared.service.codes import ENTROPY_CODED, check_format, to_codes
from shared.service.images import FIT_MODES, pixels_to_png, to_uint8
from shared.service.jobs import Job
from shared.service.negotiate import choose
from shared.service.openapi import BINARY, binary_response, request_body
from shared.service.problems import Problem, problem_responses

JSON, OCTET = "application/json", "application/octet-stream"
router = APIRouter(tags=["codec"])

BODY = request_body(
    EncodeRequest,
    **{"multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "array", "items": {"type": "string", "format": "binary"}, "minItems": 1,
                 "description": "one or more PNG, JPEG or WebP files, in order"}}}},
       OCTET: {**BINARY, "description": "N x 784 uint8: 28x28 images, row-major, back to back"},
       **{kind: {**BINARY, "description": "one image file"} for kind in FORMS[3:]}})


class EncodeJob(Job):
    """One encode request in a batch: parse its images, then frame its codes (both in the batch thread)."""

    def __init__(self, parse: Callable[[], tuple[np.ndarray, list[bool]]], size: int, fmt: str, answer: str,
                 model: str, fingerprint: str, return_inputs: bool = False) -> None:
        self.parse, self.size, self.fmt, self.answer = parse, size, fmt, answer
        self.model, self.fingerprint, self.return_inputs = model, fingerprint, return_inputs
        self.entropy_out = fmt in ENTROPY_CODED
        self.images, self.fitted = None, []

    def prepare(self) -> np.ndarray:
        self.images, self.fitted = self.parse()
        return self.images[:, None]

    def finish(self, latents: np.ndarray, payloads: list[bytes] | None) -> Response:
        codes = to_codes(self.fingerprint, latents, self.fmt, payloads)
        if self.answer == OCTET:
            return Response(wire.to_binary(codes), media_type=OCTET)
        lengths = None if codes.code_length else [len(p) for p in codes.payloads]
        inputs = ([base64.b64encode(pixels_to_png(x)).decode() for x in to_uint8(self.images)]
                  if self.return_inputs else None)
        body = EncodeResponse(**wire.to_json(codes), model=self.model, count=len(codes),
                              code_bytes=codes.code_length, code_lengths=lengths, fitted=self.fitted, inputs=inputs)
        return Response(body.model_dump_json(exclude_none=True), media_type=JSON)


@router.post(
    "/encode", response_model=EncodeResponse, response_model_exclude_none=True, openapi_extra=BODY,
    responses={200: binary_response("codes in the binary form (Accept: application/octet-stream)"),
               **problem_responses(400, 406, 413, 415, 422, 503)},
)
async def encode(
    request: Request,
    format: Literal["rc", "f32", "u8"] | None = Query(
        None, description="code format: rc (entropy coded, variable length; rd models), f32 (lossless floats)"
        " or u8 (8-bit); default: rc for rd models, else f32"),
    fit: Literal[FIT_MODES] = Query(
        "auto", description="auto: image files other than 28x28 8-bit are fitted to MNIST form (grayscale, light"
        " ink on dark, the digit scaled into 20x20, its centre of mass at the centre of 28x28; animated files:"
        " the first frame); none: refuse them (422); always: fit 28x28 files too"),
    return_inputs: bool = Query(False, description="add `inputs`, the 28x28 images encoded, to the JSON answer"),
) -> Response:
    """Encode images (PNG, JPEG or WebP files, JSON or raw bytes) into codes (JSON or binary, by Accept)."""
    answer = choose(request, [JSON, OCTET])  # before the work: a 406 should cost nothing
    if return_inputs and answer == OCTET:
        raise Problem(422, "bad-query", "return_inputs=true needs the JSON answer (Accept: application/json)")
    state = request.app.state
    runtime = state.runtime
    fmt = check_format(runtime.config, format)
    parse, count = await read_images(request, state.settings.max_images, runtime.offload, fit,
                                     state.settings.max_image_pixels)
    # Parsing (of raw bodies), the model call, entropy coding and framing all run in the batch thread.
    answered = await runtime.submit(EncodeJob(parse, count, fmt, answer, runtime.config.name,
                                              runtime.weights.fingerprint, return_inputs))
    state.metrics.observe_request(count)
    return answered
