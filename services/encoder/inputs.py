"""Read the images of an encode request, in any of its forms, as float32 (N,28,28) and fitted flags.

The images are in [0,1]; the flags say, per image, whether it was fitted to MNIST form. The parsing is
synchronous (bytes in, arrays out) and runs in a worker thread: decoding and fitting a
large photo takes tens of milliseconds, which the event loop must not wait for.
"""

from __future__ import annotations

import base64
import binascii

import numpy as np
from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from services.encoder.schemas import EncodeRequest
from shared.service.images import (
    DEFAULT_MAX_PIXELS,
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


async def read_images(request: Request, max_images: int, fit: str = "auto",
                      max_pixels: int = DEFAULT_MAX_PIXELS) -> Parsed:
    kind = content_type(request)
    try:
        if kind == "multipart/form-data":
            files = await _uploads(request, max_images)
            if len(files) > max_images:
                raise too_many(len(files), max_images)
            images, fitted = await run_in_threadpool(from_files, files, fit, max_pixels)
        elif kind not in FORMS:
            raise unsupported(kind, FORMS)
        else:
            body = await request.body()
            if not body:
                raise Problem(400, "empty-body", f"the request body is empty; send images as {kind}")
            images, fitted = await run_in_threadpool(from_body, kind, body, fit, max_pixels, max_images)
    except ImageError as e:
        raise bad_image(e) from None
    if len(images) == 0:
        raise Problem(400, "no-images", "the request holds no images")
    if len(images) > max_images:
        raise too_many(len(images), max_images)
    return images, fitted
