"""POST /v1/encode: images in, codes out."""

from __future__ import annotations

import base64
from typing import Literal

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from services.encoder.inputs import FORMS, read_images
from services.encoder.schemas import EncodeRequest, EncodeResponse
from shared.codec import wire
from shared.service.codes import check_format, to_codes
from shared.service.images import FIT_MODES, pixels_to_png, to_uint8
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


@router.post(
    "/encode", response_model=EncodeResponse, response_model_exclude_none=True, openapi_extra=BODY,
    responses={200: binary_response("codes in the binary form (Accept: application/octet-stream)"),
               **problem_responses(400, 406, 413, 415, 422)},
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
) -> Response | EncodeResponse:
    """Encode images (PNG, JPEG or WebP files, JSON or raw bytes) into codes (JSON or binary, by Accept)."""
    answer = choose(request, [JSON, OCTET])  # before the work: a 406 should cost nothing
    if return_inputs and answer == OCTET:
        raise Problem(422, "bad-query", "return_inputs=true needs the JSON answer (Accept: application/json)")
    state = request.app.state
    fmt = check_format(state.runtime.config, format)
    images, fitted = await read_images(request, state.settings.max_images, fit, state.settings.max_image_pixels)
    values = await run_in_threadpool(state.runtime.run, images[:, None])  # torch off the event loop
    state.metrics.observe_batch(len(images))
    codes = await run_in_threadpool(to_codes, state.runtime, values, fmt)
    if answer == OCTET:
        return Response(wire.to_binary(codes), media_type=OCTET)
    lengths = None if codes.code_length else [len(p) for p in codes.payloads]
    inputs = [base64.b64encode(pixels_to_png(x)).decode() for x in to_uint8(images)] if return_inputs else None
    return EncodeResponse(**wire.to_json(codes), model=state.runtime.config.name, count=len(codes),
                          code_bytes=codes.code_length, code_lengths=lengths, fitted=fitted, inputs=inputs)
