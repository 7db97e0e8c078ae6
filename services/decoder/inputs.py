"""Read the codes of a decode request (JSON or binary) and check they are this decoder's to decode."""

from __future__ import annotations

import numpy as np
from fastapi import Request

from services.decoder.schemas import DecodeRequest
from shared.codec import wire
from shared.service.codes import to_latents
from shared.service.negotiate import content_type, unsupported
from shared.service.problems import Problem, parse_json
from shared.service.runtime import HalfRuntime

FORMS = ["application/json", "application/octet-stream"]


async def read_codes(request: Request) -> wire.Codes:
    kind = content_type(request)
    if kind not in FORMS:
        raise unsupported(kind, FORMS)
    body = await request.body()
    if not body:
        raise Problem(400, "empty-body", f"the request body is empty; send codes as {kind}")
    try:
        if kind == "application/json":
            return wire.from_json(parse_json(DecodeRequest, body, "decode request"))
        return wire.from_binary(body)
    except wire.WireError as e:
        raise Problem(400, "bad-codes", str(e)) from None


def check_codes(codes: wire.Codes, runtime: HalfRuntime, max_images: int) -> np.ndarray:
    """The codes' values, once they are known to be ours: right fingerprint, shape and count."""
    if len(codes) == 0:
        raise Problem(400, "no-codes", "the request holds no codes")
    if len(codes) > max_images:
        raise Problem(413, "too-many-codes", f"{len(codes)} codes; this service takes at most {max_images}"
                      " per request")
    mine = runtime.weights.fingerprint
    if codes.fingerprint != mine:
        raise Problem(409, "fingerprint-mismatch",
                      f"these codes were made by weights with fingerprint {codes.fingerprint}, but this decoder"
                      f" holds {runtime.config.name} with fingerprint {mine}; decode them with the matching"
                      " decoder", title="Codes from other weights")
    want = tuple(runtime.config.code_shape)
    if codes.shape != want:
        raise Problem(422, "wrong-code-shape", f"codes have shape {list(codes.shape)}; {runtime.config.name}"
                      f" takes {list(want)}")
    return to_latents(runtime, codes)
