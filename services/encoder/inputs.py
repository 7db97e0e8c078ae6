"""Read the images of an encode request, in any of its forms, as float32 (N,28,28) and fitted flags.

The images are in [0,1]; the flags say, per image, whether it was fitted to MNIST form. The parsing is
synchronous (bytes in, arrays out) and never runs on the event loop: raw bodies are parsed in the batch
thread (their count is known from their length), files, JSON and multipart bodies in a bounded worker
thread first (decoding and fitting a large photo takes tens of milliseconds; their count comes from
parsing).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Awaitable, Callable
from functools import partial

import numpy as np
from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.types import Message, Scope

from services.encoder.schemas import EncodeRequest
from shared.service.images import (
    DEFAULT_MAX_PIXELS,
    PIXELS,
    ImageError,
    ImageTooLarge,
    arrays_to_pixels,
    image_to_pixels,
    raw_to_pixels,
)
from shared.service.negotiate import content_type, unsupported
from shared.service.problems import Problem, parse_json

IMAGE_TYPES = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WebP"}
FORMS = ["multipart/form-data", "application/json", "application/octet-stream", *IMAGE_TYPES]
Parsed = tuple[np.ndarray, list[bool]]  # images (N,28,28) and, per image, whether it was fitted


def bad_image(e: ImageError) -> Problem:
    if isinstance(e, ImageTooLarge):
        return Problem(413, "image-too-large", str(e))
    return Problem(422, "bad-image", str(e))


def too_many(n: int, max_images: int) -> Problem:
    return Problem(413, "too-many-images", f"{n} images; this service takes at most {max_images} per request")


def from_files(files: list[tuple[str, bytes]], fit: str = "auto", max_pixels: int = DEFAULT_MAX_PIXELS) -> Parsed:
    """Image files (where, bytes), in order -> the images and their fitted flags."""
    read = [image_to_pixels(data, where, fit, max_pixels) for where, data in files]
    if not read:
        return np.empty((0, 28, 28), np.float32), []
    return np.stack([p for p, _ in read]).astype(np.float32), [f for _, f in read]


def _b64(text: str, where: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ImageError(f"{where} is not valid base64") from None


def from_json(body: bytes, fit: str = "auto", max_pixels: int = DEFAULT_MAX_PIXELS,
              max_images: int | None = None) -> Parsed:
    req = parse_json(EncodeRequest, body, "encode request")
    if req.pixels is not None:
        images = arrays_to_pixels(req.pixels)
        return images, [False] * len(images)
    if max_images is not None and len(req.images) > max_images:
        raise too_many(len(req.images), max_images)  # before decoding any of them
    return from_files([(f"images[{i}]", _b64(t, f"images[{i}]")) for i, t in enumerate(req.images)], fit, max_pixels)


def from_body(kind: str, body: bytes, fit: str = "auto", max_pixels: int = DEFAULT_MAX_PIXELS,
              max_images: int | None = None) -> Parsed:
    """A whole body of one media type (not multipart) -> the images and their fitted flags."""
    if kind == "application/json":
        return from_json(body, fit, max_pixels, max_images)
    if kind in IMAGE_TYPES:
        return from_files([(f"the {IMAGE_TYPES[kind]} body", body)], fit, max_pixels)
    images = raw_to_pixels(body)
    return images, [False] * len(images)


async def _uploads(request: Request, max_images: int) -> list[tuple[str, bytes]]:
    # Starlette's own cap on parts keeps a flood of tiny parts from costing memory before we count. It
    # answers 400 past the cap; too many files is too many images, 413 as for the other forms.
    try:
        form = await request.form(max_files=max_images, max_fields=max_images)
    except HTTPException as e:
        if "too many files" not in str(e.detail).lower():
            raise
        raise Problem(413, "too-many-images", f"more than {max_images} files; this service takes at most"
                      f" {max_images} per request") from None
    try:
        files = []
        for name, value in form.multi_items():
            if not isinstance(value, UploadFile):
                raise ImageError(f"form field {name!r} is not a file upload (use -F {name}=@digit.png)")
            files.append((f"file {value.filename or name!r}", await value.read()))
    finally:
        await form.close()
    return files


def from_multipart(scope: Scope, body: bytes, max_images: int, fit: str, max_pixels: int) -> Parsed:
    """A multipart body already read -> images; in a worker thread, with starlette's own form parser run
    on a private event loop, so the parts are parsed off the service's loop."""

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    # (more than max_images files are refused by the form parser's cap, in _uploads)
    return from_files(asyncio.run(_uploads(Request(scope, receive), max_images)), fit, max_pixels)


def check_count(count: int, max_images: int) -> None:
    if count == 0:
        raise Problem(400, "no-images", "the request holds no images")
    if count > max_images:
        raise too_many(count, max_images)


def _checked(parse: Callable[[], Parsed], max_images: int) -> Callable[[], Parsed]:
    """The parse as a worker or the batch thread runs it: a bad image gets 422 (413 when too large), a
    bad count 400 or 413."""

    def run() -> Parsed:
        try:
            images, fitted = parse()
        except ImageError as e:
            raise bad_image(e) from None
        check_count(len(images), max_images)
        return images, fitted

    return run


async def read_images(request: Request, max_images: int, offload: Callable[..., Awaitable[Parsed]],
                      fit: str = "auto", max_pixels: int = DEFAULT_MAX_PIXELS
                      ) -> tuple[Callable[[], Parsed], int]:
    """The request's images as (parse, count): `parse()` (for the batch thread) gives the images and their
    fitted flags, or raises the request's 4xx; `count` is N. A raw body's count is known from its length
    (so a raw body of too many images is refused before anything is parsed) and it is parsed in the batch
    thread; the other forms are parsed first, by `offload` in a worker thread, to learn their count."""
    kind = content_type(request)
    if kind not in FORMS:
        raise unsupported(kind, FORMS)
    declared = request.headers.get("content-length", "")
    raw_count = int(declared) // PIXELS if kind == "application/octet-stream" and declared.isdigit() else 0
    if raw_count > max_images and not int(declared) % PIXELS:  # refused before the body is even read
        check_count(raw_count, max_images)
    body = await request.body()
    if kind == "multipart/form-data":
        parsed = await offload(_checked(partial(from_multipart, request.scope, body, max_images, fit, max_pixels),
                                        max_images))
        return (lambda: parsed), len(parsed[0])
    if not body:
        raise Problem(400, "empty-body", f"the request body is empty; send images as {kind}")
    if kind != "application/octet-stream":  # JSON and image files: decoding may be slow, count unknown
        parsed = await offload(_checked(partial(from_body, kind, body, fit, max_pixels, max_images), max_images))
        return (lambda: parsed), len(parsed[0])
    count = len(body) // PIXELS
    if count > max_images and not len(body) % PIXELS:  # refused from the length alone, before parsing
        check_count(count, max_images)  # (a chunked body carries no Content-Length)
    return _checked(partial(from_body, kind, body), max_images), max(count, 1)
