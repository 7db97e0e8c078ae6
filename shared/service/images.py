"""Images on the wire (numpy and Pillow only): PNG, pixel arrays and raw bytes <-> float32 (N,28,28).

Inputs are checked here so that a bad image gets a clear 4xx, never a 500. 8-bit colour or alpha
PNGs of 28x28 are converted to grayscale (alpha dropped, as MNIST has none); other sizes, 16-bit and
float images are refused rather than guessed at.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

SIDE = 28
PIXELS = SIDE * SIDE
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EIGHT_BIT_MODES = {"L", "LA", "P", "PA", "RGB", "RGBA", "1", "La", "RGBa"}


class ImageError(ValueError):
    """An input image the codec cannot take; the message says which one and why."""


def png_to_pixels(data: bytes, where: str = "image") -> np.ndarray:
    """PNG bytes -> float32 (28,28) in [0,1]."""
    if not data:
        raise ImageError(f"{where} is empty")
    if not data.startswith(PNG_SIGNATURE):
        raise ImageError(f"{where} is not a PNG file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if img.size != (SIDE, SIDE):  # checked before decoding: a huge PNG costs nothing here
                raise ImageError(f"{where} is {img.size[0]}x{img.size[1]} pixels; the codec takes {SIDE}x{SIDE}")
            if img.mode not in EIGHT_BIT_MODES:
                raise ImageError(f"{where} has pixel mode {img.mode!r}; send an 8-bit grayscale PNG")
            img.load()
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{where} is not a readable PNG (truncated or corrupt)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"{where} is not a readable PNG ({e})") from None
    return np.asarray(img.convert("L"), dtype=np.float32) / 255.0


def pixels_to_png(pixels: np.ndarray) -> bytes:
    """uint8 (28,28) -> PNG bytes (8-bit grayscale)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()


def arrays_to_pixels(values: list) -> np.ndarray:
    """Nested lists (N,28,28) of 0..255 integers or of [0,1] floats -> float32 (N,28,28) in [0,1].

    All integers means 8-bit values; any float in the batch means the [0,1] scale.
    """
    try:
        a = np.asarray(values)
    except ValueError:
        raise ImageError("pixels must be rectangular (N,28,28) arrays") from None
    if a.ndim != 3 or a.shape[1:] != (SIDE, SIDE):
        raise ImageError(f"pixels must have shape (N,{SIDE},{SIDE}); got {tuple(a.shape)}")
    if a.dtype.kind in "iu":
        if a.min() < 0 or a.max() > 255:
            raise ImageError(f"integer pixels must be 0..255; got values from {a.min()} to {a.max()}")
        return a.astype(np.float32) / 255.0
    if a.dtype.kind != "f":
        raise ImageError(f"pixels must be numbers; got {a.dtype}")
    if not np.isfinite(a).all():
        raise ImageError("pixels hold NaN or infinite values")
    if a.min() < 0 or a.max() > 1:
        raise ImageError(f"float pixels must be in [0,1] (use integers for 0..255); got {a.min():g}..{a.max():g}")
    return a.astype(np.float32)


def raw_to_pixels(data: bytes) -> np.ndarray:
    """N x 784 uint8 bytes (row-major 28x28 images back to back) -> float32 (N,28,28) in [0,1]."""
    if not data or len(data) % PIXELS:
        raise ImageError(f"raw images must be a positive multiple of {PIXELS} bytes (N x 28 x 28 uint8);"
                         f" got {len(data)} bytes")
    return np.frombuffer(data, dtype=np.uint8).reshape(-1, SIDE, SIDE).astype(np.float32) / 255.0


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Floats in [0,1] of shape (N,...,28,28) -> uint8 (N,28,28), rounded; NaN becomes 0."""
    a = np.nan_to_num(np.asarray(images, dtype=np.float32), nan=0.0).reshape(-1, SIDE, SIDE)
    return np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)


def psnr(original: np.ndarray, recon: np.ndarray, cap: float = 100.0) -> np.ndarray:
    """Per-image PSNR in dB of uint8 images (N,28,28), capped so a perfect image stays finite."""
    a = np.asarray(original, dtype=np.float64).reshape(len(original), -1) / 255.0
    b = np.asarray(recon, dtype=np.float64).reshape(len(recon), -1) / 255.0
    mse = ((a - b) ** 2).mean(axis=1)
    with np.errstate(divide="ignore"):
        return np.minimum(10 * np.log10(1.0 / mse), cap)
