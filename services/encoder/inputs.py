"""Read the images of an encode request, in any of its forms, as float32 (N,28,28) in [0,1]."""

from __future__ import annotations

import base64
import binascii

import numpy as np
from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from services.encoder.schemas import EncodeRequest
from shared.service.images import ImageError, arrays_to_pixels, png_to_pixels, raw_to_pixels
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
        images = []
        for name, value in form.multi_items():
            if not isinstance(value, UploadFile):
                raise ImageError(f"form field {name!r} is not a file upload (use -F {name}=@digit.png)")
            images.append(png_to_pixels(await value.read(), f"file {value.filename or name!r}"))
    finally:
        await form.close()
    return np.stack(images) if images else np.empty((0, 28, 28), np.float32)


async def read_images(request: Request, max_images: int) -> np.ndarray:
    kind = content_type(request)
    try:
        if kind == "multipart/form-data":
            images = await _from_multipart(request, max_images)
        elif kind not in FORMS:
            raise unsupported(kind, FORMS)
        else:
            body = await request.body()
            if not body:
                raise Problem(400, "empty-body", f"the request body is empty; send images as {kind}")
            if kind == "application/json":
                images = _from_json(body)
            elif kind == "image/png":
                images = png_to_pixels(body, "the PNG body")[None]
            else:
                images = raw_to_pixels(body)
    except ImageError as e:
        raise bad_image(e) from None
    if len(images) == 0:
        raise Problem(400, "no-images", "the request holds no images")
    if len(images) > max_images:
        raise Problem(413, "too-many-images", f"{len(images)} images; this service takes at most {max_images}"
                      " per request")
    return images
