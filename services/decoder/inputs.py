"""Read the codes of a decode request (JSON or binary) and check they are this decoder's to decode."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

import numpy as np
from fastapi import Request

from services.decoder.schemas import DecodeRequest
from shared.codec import wire
from shared.codec.config import ModelConfig
from shared.service.codes import ENTROPY_CODED, check_format, fixed_latents
from shared.service.jobs import Entropic
from shared.service.negotiate import content_type, unsupported
from shared.service.problems import Problem, parse_json

FORMS = ["application/json", "application/octet-stream"]


def parse_json_codes(body: bytes) -> wire.Codes:
    try:
        return wire.from_json(parse_json(DecodeRequest, body, "decode request"))
    except wire.WireError as e:
        raise Problem(400, "bad-codes", str(e)) from None


def parse_binary_codes(body: bytes) -> wire.Codes:
    try:
        return wire.from_binary(body)
    except wire.WireError as e:
        raise Problem(400, "bad-codes", str(e)) from None


def binary_count(body: bytes, max_images: int) -> int:
    """The count a binary body's header claims, checked against max_images (413) before anything is
    parsed: a 4 MiB body of two million one-byte codes costs nothing. 1 when the header is not readable
    (the parser then says why); the lengths are checked by the parser, at most max_images of them."""
    if len(body) < wire.HEADER.size:
        return 1
    magic, *_, count, _ = wire.HEADER.unpack_from(body)
    if magic != wire.MAGIC:
        return 1
    too_many(count, max_images)
    return max(count, 1)


def too_many(count: int, max_images: int) -> None:
    if count > max_images:
        raise Problem(413, "too-many-codes", f"{count} codes; this service takes at most {max_images}"
                      " per request")


async def read_codes(request: Request, max_images: int,
                     offload: Callable[..., Awaitable[wire.Codes]]) -> tuple[Callable[[], wire.Codes], int]:
    """The request's codes as (parse, count): `parse()` (for the batch thread) gives the Codes or raises
    the request's 400; a binary body's count comes from its header, checked before parsing; a JSON body
    is parsed first, by `offload` in a worker thread, to learn its count."""
    kind = content_type(request)
    if kind not in FORMS:
        raise unsupported(kind, FORMS)
    if kind == "application/json":
        body = await request.body()
        empty(body, kind)
        codes = await offload(parse_json_codes, body)
        too_many(len(codes), max_images)  # before it queues: a 413, not a 503 for a queue it cannot fit
        return (lambda: codes), max(len(codes), 1)
    chunks, size, count = [], 0, None
    async for chunk in request.stream():
        chunks.append(chunk)
        size += len(chunk)
        if count is None and size >= wire.HEADER.size:  # refused at its header, before the rest arrives
            count = binary_count(b"".join(chunks)[:wire.HEADER.size], max_images)
    body = b"".join(chunks)
    empty(body, kind)
    return partial(parse_binary_codes, body), count or 1  # None: shorter than a header, the parser says so


def empty(body: bytes, kind: str) -> None:
    if not body:
        raise Problem(400, "empty-body", f"the request body is empty; send codes as {kind}")


def check_codes(codes: wire.Codes, config: ModelConfig, fingerprint: str, max_images: int) -> np.ndarray | Entropic:
    """The codes' values once they are known to be ours (right fingerprint, shape and count): latents
    for fixed-length codes, or entropy-coded codes for the batch's decoding pass."""
    if len(codes) == 0:
        raise Problem(400, "no-codes", "the request holds no codes")
    too_many(len(codes), max_images)
    if codes.fingerprint != fingerprint:
        raise Problem(409, "fingerprint-mismatch",
                      f"these codes were made by weights with fingerprint {codes.fingerprint}, but this decoder"
                      f" holds {config.name} with fingerprint {fingerprint}; decode them with the matching"
                      " decoder", title="Codes from other weights")
    want = tuple(config.code_shape)
    if codes.shape != want:
        raise Problem(422, "wrong-code-shape", f"codes have shape {list(codes.shape)}; {config.name}"
                      f" takes {list(want)}")
    check_format(config, codes.format)
    if codes.format in ENTROPY_CODED:
        return Entropic(codes.payloads)
    return fixed_latents(codes)
