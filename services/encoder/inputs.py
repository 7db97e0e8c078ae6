"""Read the images of an encode request, in any of its forms, as float32 (N,28,28) in [0,1]."""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Awaitable, Callable
from functools import partial

import numpy as np
from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.types import Message, Scope

from services.encoder.schemas import EncodeRequest
from shared.service.images import PIXELS, ImageError, arrays_to_pixels, png_to_pixels, raw_to_pixels
from shared.service.negotiate import content_type, unsupported
from shared.service.problems import Problem, parse_json

FORMS = ["multipart/form-data", "application/json", "application/octet-stream", "image/png"]


def bad_image(e: ImageError) -> Problem:
    return Problem(422, "bad-image", str(e))


def _b64_png(text: str, where: str) -> np.ndarray:
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ImageError(f"{where} is not valid base64") from None
    return png_to_pixels(data, where)


def _from_json(body: bytes) -> np.ndarray:
    req = parse_json(EncodeRequest, body, "encode request")
    if req.pixels is not None:
        return arrays_to_pixels(req.pixels)
    if not req.images:
        return np.empty((0, 28, 28), np.float32)
    return np.stack([_b64_png(t, f"images[{i}]") for i, t in enumerate(req.images)])


async def _from_multipart(request: Request, max_images: int) -> np.ndarray:
    # Starlette's own cap on parts keeps a flood of tiny parts from costing memory before we count.
    async with request.form(max_files=max_images + 1, max_fields=max_images + 1) as form:
        images = []
        for name, value in form.multi_items():
            if not isinstance(value, UploadFile):
                raise ImageError(f"form field {name!r} is not a file upload (use -F {name}=@digit.png)")
            images.append(png_to_pixels(await value.read(), f"file {value.filename or name!r}"))
    return np.stack(images) if images else np.empty((0, 28, 28), np.float32)


def parse_multipart(scope: Scope, body: bytes, max_images: int) -> np.ndarray:
    """A multipart body already read -> images; in a worker thread, with starlette's own form parser run
    on a private event loop, so the parts are parsed off the service's loop."""

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    return asyncio.run(_from_multipart(Request(scope, receive), max_images))


def check_count(count: int, max_images: int) -> None:
    if count == 0:
        raise Problem(400, "no-images", "the request holds no images")
    if count > max_images:
        raise Problem(413, "too-many-images", f"{count} images; this service takes at most {max_images}"
                      " per request")


def _parsed(parse: Callable[[], np.ndarray], max_images: int) -> Callable[[], np.ndarray]:
    """The parse, as the batch thread runs it: a bad image gets 422, a bad count 400 or 413."""

    def run() -> np.ndarray:
        try:
            images = parse()
        except ImageError as e:
            raise bad_image(e) from None
        check_count(len(images), max_images)
        return images

    return run


async def read_images(request: Request, max_images: int,
                      offload: Callable[..., Awaitable[np.ndarray]]) -> tuple[Callable[[], np.ndarray], int]:
    """The request's images as (parse, count): `parse()` (for the batch thread) gives float32 (N,28,28)
    or raises the request's 4xx; `count` is N, known before parsing for raw and PNG bodies (so a raw body
    of too many images is refused before anything is parsed). JSON and multipart bodies are parsed first,
    by `offload` in a worker thread, to learn their count."""
    kind = content_type(request)
    if kind not in FORMS:
        raise unsupported(kind, FORMS)
    declared = request.headers.get("content-length", "")
    raw_count = int(declared) // PIXELS if kind == "application/octet-stream" and declared.isdigit() else 0
    if raw_count > max_images and not int(declared) % PIXELS:  # refused before the body is even read
        check_count(raw_count, max_images)
    body = await request.body()
    if kind == "multipart/form-data":
        images = await offload(_parsed(partial(parse_multipart, request.scope, body, max_images), max_images))
        return (lambda: images), len(images)
    if not body:
        raise Problem(400, "empty-body", f"the request body is empty; send images as {kind}")
    if kind == "application/json":
        images = await offload(_parsed(partial(_from_json, body), max_images))
        return (lambda: images), len(images)
    if kind == "image/png":
        return _parsed(lambda: png_to_pixels(body, "the PNG body")[None], max_images), 1
    count = len(body) // PIXELS
    if count > max_images and not len(body) % PIXELS:  # refused from the length alone, before parsing
        check_count(count, max_images)  # (a chunked body carries no Content-Length)
    return _parsed(partial(raw_to_pixels, body), max_images), max(count, 1)
