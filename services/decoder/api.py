"""POST /v1/decode: codes in, images out."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from fastapi import APIRouter, Query, Request, Response

from services.decoder import outputs
from services.decoder.inputs import check_codes, read_codes
from services.decoder.schemas import DecodeRequest, DecodeResponse
from shared.codec import wire
from shared.codec.config import ModelConfig
from shared.service.codes import checked_latents, undecodable
from shared.service.images import to_uint8
from shared.service.jobs import Entropic, Job
from shared.service.negotiate import choose
from shared.service.openapi import BINARY, request_body
from shared.service.problems import problem_responses

router = APIRouter(tags=["codec"])

BODY = request_body(DecodeRequest, **{
    outputs.OCTET: {**BINARY, "description": "codes in the binary form (see the README's wire format section)"}})


class DecodeJob(Job):
    """One decode request in a batch: parse and check its codes, then frame its images (in the batch
    thread); entropy-coded codes are decoded in the batch's one pass."""

    def __init__(self, parse: Callable[[], wire.Codes], size: int, answer: str, config: ModelConfig,
                 fingerprint: str, max_images: int, pixels: bool) -> None:
        self.parse, self.size, self.answer, self.config = parse, size, answer, config
        self.fingerprint, self.max_images, self.pixels = fingerprint, max_images, pixels
        self.format = ""

    def prepare(self) -> np.ndarray | Entropic:
        codes = self.parse()
        self.format = codes.format
        values = check_codes(codes, self.config, self.fingerprint, self.max_images)
        outputs.check_answerable(self.answer, len(codes))
        return values

    def decoded(self, latents: np.ndarray) -> np.ndarray:
        return checked_latents(latents)

    def undecodable(self, error: Exception) -> Exception:
        return undecodable(error, self.format)

    def finish(self, images: np.ndarray, codes: list[bytes] | None) -> Response:
        return outputs.respond(self.answer, to_uint8(images), self.config.name, self.fingerprint, self.pixels)


@router.post(
    "/decode", response_model=DecodeResponse, response_model_exclude_none=True, openapi_extra=BODY,
    responses={200: {"content": {outputs.PNG: BINARY, outputs.OCTET: BINARY},
                     "description": "JSON, one PNG (image/png), or N x 784 uint8 (application/octet-stream)"},
               **problem_responses(400, 406, 409, 413, 415, 422, 503)},
)
async def decode(
    request: Request,
    pixels: bool = Query(False, description="JSON answer: also give each image as a 28x28 array of 0..255"),
) -> Response:
    """Decode codes (JSON or binary) into images (JSON, PNG or raw bytes, by Accept)."""
    answer = choose(request, outputs.OFFERS)  # before the work: a 406 should cost nothing
    state = request.app.state
    runtime = state.runtime
    parse, count = await read_codes(request, state.settings.max_images, runtime.offload)
    # Parsing, entropy decoding, the model call and framing all run in the batch thread.
    answered = await runtime.submit(DecodeJob(parse, count, answer, runtime.config, runtime.weights.fingerprint,
                                              state.settings.max_images, pixels))
    state.metrics.observe_request(count)
    return answered
