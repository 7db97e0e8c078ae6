"""POST /v1/sample (new digits from a vae's prior) and POST /v1/interpolate (images between two codes).

The receiver draws alone: both endpoints need only the decoder half. Sampling needs a model with a
prior (vae): N(0, I), or the Gaussian mixture a vae's decoder half holds when it was fitted one (its
default then); interpolation works for every model, on the latents the decoder would decode (for rd
models the dequantized ones).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from functools import partial

import numpy as np
from fastapi import APIRouter, Query, Request, Response

from services.decoder import outputs
from services.decoder.draw_schemas import InterpolateResponse, SampleRequest, SampleResponse
from services.decoder.inputs import check_codes, read_codes
from services.decoder.schemas import DecodeRequest
from shared.codec import wire
from shared.codec.latent import choose_prior, fractions, interpolate, sample_prior
from shared.service.codes import checked_latents, undecodable
from shared.service.images import to_uint8
from shared.service.jobs import Entropic
from shared.service.negotiate import choose, content_type, unsupported
from shared.service.openapi import BINARY, request_body
from shared.service.problems import Problem, parse_json, problem_responses
from shared.service.runtime import HalfRuntime

router = APIRouter(tags=["drawing"])
SEED_HEADER = "X-Aelink-Seed"  # the seed used, for PNG and raw answers, which have no JSON to carry it
PRIOR_HEADER = "X-Aelink-Prior"  # the prior used ("fitted" or "standard"), likewise
IMAGES_200 = {200: {"content": {outputs.PNG: BINARY, outputs.OCTET: BINARY},
                    "description": "JSON, one PNG (image/png), or N x 784 uint8 (application/octet-stream)"}}


async def read_sample_request(request: Request) -> SampleRequest:
    body = await request.body()
    if not body:  # nothing asked: one digit, a fresh seed, temperature 1
        return SampleRequest()
    kind = content_type(request)
    if kind != outputs.JSON:
        raise unsupported(kind, [outputs.JSON])
    return parse_json(SampleRequest, body, "sample request")


def check_count(what: str, n: int, max_images: int) -> None:
    if n > max_images:
        raise Problem(413, f"too-many-{what}", f"{n} {what} asked; this service gives at most {max_images}"
                      " per request")


async def decode_latents(request: Request, latents: np.ndarray) -> np.ndarray:
    """Latents -> uint8 images, in the decoder's dynamic batches with the other requests' work."""
    state = request.app.state
    images = to_uint8(await state.runtime.infer(latents))
    state.metrics.observe_request(len(images))
    return images


def two_ends(parse: Callable[[], wire.Codes], runtime: HalfRuntime, max_images: int) -> np.ndarray:
    """The two codes' latents, checked as /v1/decode checks codes (in a worker thread)."""
    codes = parse()
    if len(codes) != 2:
        raise Problem(422, "need-two-codes", f"the request holds {len(codes)} codes; interpolation takes"
                      " exactly two, its two ends")
    values = check_codes(codes, runtime.config, runtime.weights.fingerprint, max_images)
    if isinstance(values, Entropic):
        try:
            values = runtime.decompress(values.payloads)
        except Exception as e:
            raise undecodable(e, codes.format) from None
        values = checked_latents(values)
    return values


@router.post(
    "/sample", response_model=SampleResponse, response_model_exclude_none=True,
    openapi_extra=request_body(SampleRequest),
    responses={**IMAGES_200, **problem_responses(400, 406, 409, 413, 415, 422)},
)
async def sample(
    request: Request,
    pixels: bool = Query(False, description="JSON answer: also give each image as a 28x28 array of 0..255"),
) -> Response | SampleResponse:
    """New digits from the model's prior (vae models only; 409 for others): its fitted Gaussian mixture if it
    has one, else N(0, I); `prior` asks for either (409 for "fitted" without one). The same seed,
    temperature and prior give the same images; the seed and prior used are in the JSON answer and the
    X-Aelink-Seed and X-Aelink-Prior headers."""
    answer = choose(request, outputs.OFFERS)
    state = request.app.state
    config = state.runtime.config
    if not config.has_prior:
        raise Problem(409, "no-prior", f"{config.name} is a {config.kind} model: it has no prior to sample"
                      " from; serve a vae model (e.g. vae32) to sample, or use /v1/interpolate",
                      title="This model cannot sample")
    asked = await read_sample_request(request)
    check_count("images", asked.n, state.settings.max_images)
    outputs.check_answerable(answer, asked.n)
    try:
        prior, mixture = choose_prior(state.runtime.module, asked.prior)
    except ValueError as e:
        raise Problem(409, "no-fitted-prior", str(e), title="This model has no fitted prior") from None
    seed = asked.seed if asked.seed is not None else secrets.randbits(63)
    latents = sample_prior(config, asked.n, seed, asked.temperature, mixture)
    images = await decode_latents(request, latents)
    reply = await state.runtime.offload(partial(outputs.respond, answer, images, config.name,
                                                state.runtime.weights.fingerprint, pixels, SampleResponse,
                                                seed=seed, temperature=asked.temperature, prior=prior))
    reply.headers[SEED_HEADER] = str(seed)
    reply.headers[PRIOR_HEADER] = prior
    return reply


INTERPOLATE_BODY = request_body(DecodeRequest, **{
    outputs.OCTET: {**BINARY, "description": "two codes in the binary form, as the encoder returns them"}})


@router.post(
    "/interpolate", response_model=InterpolateResponse, response_model_exclude_none=True,
    openapi_extra=INTERPOLATE_BODY,
    responses={**IMAGES_200, **problem_responses(400, 406, 409, 413, 415, 422)},
)
async def interpolate_codes(
    request: Request,
    steps: int = Query(8, ge=2, description="images from the first code's to the second's, both included"),
    pixels: bool = Query(False, description="JSON answer: also give each image as a 28x28 array of 0..255"),
) -> Response | InterpolateResponse:
    """Two codes (JSON or binary, exactly as the encoder returned them) -> `steps` images along the
    straight line between their latents; the first and last are the decodes of the two codes."""
    answer = choose(request, outputs.OFFERS)
    state = request.app.state
    outputs.check_answerable(answer, steps)
    runtime = state.runtime
    parse, _ = await read_codes(request, state.settings.max_images, runtime.offload)
    ends = await runtime.offload(two_ends, parse, runtime, state.settings.max_images)
    # after the codes: a malformed body is refused as such (400/422) whatever the steps asked
    check_count("steps", steps, state.settings.max_images)
    images = await decode_latents(request, interpolate(ends[0], ends[1], steps))
    return await runtime.offload(partial(outputs.respond, answer, images, runtime.config.name,
                                         runtime.weights.fingerprint, pixels, InterpolateResponse,
                                         t=fractions(steps)))
