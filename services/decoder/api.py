"""POST /v1/decode: codes in, images out."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from services.decoder import outputs
from services.decoder.inputs import check_codes, read_codes
from services.decoder.schemas import DecodeRequest, DecodeResponse
from shared.service.images import to_uint8
from shared.service.negotiate import choose
from shared.service.openapi import BINARY, request_body
from shared.service.problems import problem_responses

router = APIRouter(tags=["codec"])

BODY = request_body(DecodeRequest, **{
    outputs.OCTET: {**BINARY, "description": "codes in the binary form (see the README's wire format section)"}})


@router.post(
    "/decode", response_model=DecodeResponse, response_model_exclude_none=True, openapi_extra=BODY,
    responses={200: {"content": {outputs.PNG: BINARY, outputs.OCTET: BINARY},
                     "description": "JSON, one PNG (image/png), or N x 784 uint8 (application/octet-stream)"},
               **problem_responses(400, 406, 409, 413, 415, 422)},
)
async def decode(
    request: Request,
    pixels: bool = Query(False, description="JSON answer: also give each image as a 28x28 array of 0..255"),
) -> Response | DecodeResponse:
    """Decode codes (JSON or binary) into images (JSON, PNG or raw bytes, by Accept)."""
    answer = choose(request, outputs.OFFERS)  # before the work: a 406 should cost nothing
    state = request.app.state
    codes = await read_codes(request)
    # entropy decoding is pure Python: off the event loop, as the network's forward is
    values = await run_in_threadpool(check_codes, codes, state.runtime, state.settings.max_images)
    outputs.check_answerable(answer, len(values))
    images = to_uint8(await run_in_threadpool(state.runtime.run, values))  # torch off the event loop
    state.metrics.observe_batch(len(images))
    return outputs.respond(answer, images, state.runtime.config.name, state.runtime.weights.fingerprint, pixels)
