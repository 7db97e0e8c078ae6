"""Images on the wire (numpy and Pillow only): image files, pixel arrays and raw bytes <-> float32 (N,28,28).

Inputs are checked here so that a bad image gets a clear 4xx, never a 500. A 28x28 image in an 8-bit
mode is taken as it is (colour converted to grayscale, alpha dropped, as MNIST has none). Any other PNG,
JPEG or WebP, of any size and mode, is brought to MNIST form by `shared.service.fitting` unless the
caller asks for no fitting; its pixel count is checked against a limit before a single pixel is decoded.
Animated files give their first frame.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from shared.service.fitting import TRANSPOSE, WORK_SIDE, FitError, fit_digit, to_work_size

SIDE = 28
PIXELS = SIDE * SIDE
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EIGHT_BIT_MODES = {"L", "LA", "P", "PA", "RGB", "RGBA", "1", "La", "RGBa"}
FIT_MODES = ("auto", "none", "always")  # auto: fit all but 28x28 8-bit images; none: refuse them; always: fit all
DEFAULT_MAX_PIXELS = 25_000_000  # a 25-megapixel photo; decoded, at most 100 MB (RGBA) per image at a time
WIDE_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}  # 16-bit and float: read as numbers, then scaled


class ImageError(ValueError):
    """An input image the codec cannot take; the message says which one and why."""


class ImageTooLarge(ImageError):
    """More pixels than the service decodes (a 413: the sender can shrink it)."""


def sniff(data: bytes) -> str | None:
    """The file's format from its first bytes: PNG, JPEG, WEBP, or None."""
    if data.startswith(PNG_SIGNATURE):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def png_to_pixels(data: bytes, where: str = "image") -> np.ndarray:
    """PNG bytes -> float32 (28,28) in [0,1]; only 28x28 8-bit PNGs (no fitting)."""
    if data and not data.startswith(PNG_SIGNATURE):
        raise ImageError(f"{where} is not a PNG file")
    return image_to_pixels(data, where, fit="none")[0]


def image_to_pixels(data: bytes, where: str = "image", fit: str = "auto",
                    max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, bool]:
    """PNG, JPEG or WebP bytes -> (float32 (28,28) in [0,1], whether it was fitted to MNIST form)."""
    if not data:
        raise ImageError(f"{where} is empty")
    kind = sniff(data)
    if kind is None:
        raise ImageError(f"{where} is not a PNG, JPEG or WebP file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=[kind])
            w, h = img.size  # read from the header: nothing is decoded yet
            if (w, h) == (SIDE, SIDE) and img.mode in EIGHT_BIT_MODES and fit != "always":
                img.load()
                return np.asarray(img.convert("L"), dtype=np.float32) / 255.0, False
            if fit == "none":
                if (w, h) != (SIDE, SIDE):
                    raise ImageError(f"{where} is {w}x{h} pixels; the codec takes {SIDE}x{SIDE} (fit=none:"
                                     " no fitting to MNIST form)")
                raise ImageError(f"{where} has pixel mode {img.mode!r}; send an 8-bit grayscale PNG")
            if w * h > max_pixels:
                raise ImageTooLarge(f"{where} is {w}x{h} = {w * h:,} pixels; this service decodes at most"
                                    f" {max_pixels:,} per image")
            gray = _gray(img, kind)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:  # Pillow's own cap, at open
        raise ImageTooLarge(f"{where} has more pixels than this service decodes ({e})") from None
    except UnidentifiedImageError:
        raise ImageError(f"{where} is not a readable {kind} (truncated or corrupt)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageError(f"{where} is not a readable {kind} ({e})") from None
    try:
        fitted = fit_digit(gray)
    except FitError as e:
        raise ImageError(f"{where} ({w}x{h} pixels): {e}") from None
    # Whole 8-bit levels, so the 28x28 handed back (PNG) is exactly what was encoded.
    return np.rint(fitted * 255.0) / 255.0, True


def _gray(img: Image.Image, kind: str) -> np.ndarray:
    """Decode (reduced to the working size) and turn into grayscale floats in [0,1], upright."""
    orientation = img.getexif().get(0x0112)  # phone photos are stored sideways with this tag
    if kind == "JPEG":
        w, h = img.size  # decode at 1/2, 1/4 or 1/8 scale when that still leaves the working size
        s = WORK_SIDE / max(w, h)
        img.draft("L", (max(1, round(w * s)), max(1, round(h * s))))
    img.load()
    alpha = None
    if img.mode in WIDE_MODES:
        a = np.asarray(img, dtype=np.float32)
        img = Image.fromarray(a / (65535.0 if img.mode != "F" else max(1.0, float(a.max()))), "F")
    elif img.mode in ("LA", "La", "PA", "RGBA", "RGBa") or "transparency" in img.info:
        img = img.convert("RGBA").convert("LA")
        alpha = img.getchannel("A")
        img = img.getchannel("L")
    else:
        img = img.convert("L")
    layers = [to_work_size(x) for x in (img, alpha) if x is not None]
    if orientation in TRANSPOSE:
        layers = [x.transpose(TRANSPOSE[orientation]) for x in layers]
    img, alpha = layers[0], layers[1] if len(layers) > 1 else None
    gray = np.asarray(img, dtype=np.float32)
    gray = gray / 255.0 if img.mode == "L" else np.clip(gray, 0, 1)
    if alpha is not None:
        a = np.asarray(alpha, dtype=np.float32) / 255.0
        if a.min() < 0.99:
            # A drawing on a transparent ground: put it on the ground that contrasts with its ink.
            ink = float((gray * a).sum() / max(a.sum(), 1e-6))
            gray = a * gray + (1 - a) * (1.0 if ink < 0.5 else 0.0)
    return gray


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
