"""Digit images made in the tests: a font's digits at any size and look, and their MNIST-form rendering."""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
HIRES = 400  # the clean rendering's canvas: the glyph is about 280 pixels tall


@cache
def font(size: int) -> ImageFont.FreeTypeFont:
    """DejaVu Sans Bold when installed (Debian: fonts-dejavu-core), else Pillow's own scalable font."""
    return ImageFont.truetype(str(DEJAVU), size) if DEJAVU.is_file() else ImageFont.load_default(size)


def glyph(digit: int, angle: float = 0.0) -> np.ndarray:
    """The digit, light on black, clean, at high resolution: float (HIRES,HIRES) in [0,1]."""
    img = Image.new("L", (HIRES, HIRES), 0)
    ImageDraw.Draw(img).text((HIRES / 2, HIRES / 2), str(digit), fill=255, font=font(300), anchor="mm")
    if angle:
        img = img.rotate(angle, Image.Resampling.BICUBIC)
    return np.asarray(img, np.float32) / 255.0


def mnist_form(a: np.ndarray) -> np.ndarray:
    """MNIST's recipe on a clean light-on-black image, written out plainly: the ink's exact bounding box
    scaled (aspect kept, area-averaged) so its longer side is 20 pixels, the centre of mass at pixel 14."""
    ys, xs = np.nonzero(a > 0)
    scale = 20 / max(ys.max() + 1 - ys.min(), xs.max() + 1 - xs.min())
    cy = (a.sum(1) * np.arange(a.shape[0])).sum() / a.sum() + 0.5
    cx = (a.sum(0) * np.arange(a.shape[1])).sum() / a.sum() + 0.5
    span, pad = 28 / scale, HIRES
    top, left = cy - 14.5 / scale + pad, cx - 14.5 / scale + pad
    out = Image.fromarray(np.pad(a, pad), "F").resize((28, 28), Image.Resampling.BOX,
                                                       box=(left, top, left + span, top + span))
    out = np.clip(np.asarray(out, np.float32), 0, None)
    return out / out.max()


def photo(a: np.ndarray, size: tuple[int, int], *, dark_on_light: bool = False, at: tuple[float, float] = (0.5, 0.5),
          digit_height: float = 0.7, noise: float = 0.0, specks: int = 0, seed: int = 0) -> np.ndarray:
    """The clean glyph placed in a (W,H) picture, its height a share of the picture's, centred at `at`
    (fractions of W and H), on paper (dark ink on light) or not, with sensor noise (sigma in 0..255
    levels) and specks. Returns uint8 (H,W)."""
    w, h = size
    side = max(2, round(h * digit_height / 0.7))  # the glyph is 0.7 of its canvas tall
    g = np.asarray(Image.fromarray(a, "F").resize((side, side), Image.Resampling.BOX), np.float32)
    canvas = np.zeros((h + 2 * side, w + 2 * side), np.float32)
    y, x = round(at[1] * h - side / 2) + side, round(at[0] * w - side / 2) + side
    canvas[y:y + side, x:x + side] = g
    ink = canvas[side:side + h, side:side + w]
    rng = np.random.default_rng(seed)
    ground, level = (225.0, 35.0) if dark_on_light else (20.0, 235.0)
    img = ground + (level - ground) * ink + rng.normal(0, noise, ink.shape)
    for _ in range(specks):  # dust: small dots of ink-like colour, away from the digit's own spot
        sy, sx = rng.integers(0, h - 3), rng.integers(0, w - 3)
        img[sy:sy + 3, sx:sx + 3] = level
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def encoded(pixels: np.ndarray, fmt: str = "PNG", mode: str = "L", **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(buf, format=fmt, **kw)
    return buf.getvalue()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2).mean())
    return min(100.0, 10 * np.log10(1 / max(mse, 1e-12)))
