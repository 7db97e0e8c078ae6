"""Any image in: MNIST-form fitting of digits drawn with a font at several sizes and looks, and the limits
on image files (pixel count before decoding, corrupt files, animation, EXIF orientation)."""

from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pytest
from digit_images import encoded, glyph, mnist_form, photo, psnr
from PIL import Image

from shared.service.fitting import FitError, components, fit_digit
from shared.service.images import ImageError, ImageTooLarge, image_to_pixels, png_to_pixels

# name -> (how the digit is shown, the least PSNR against its MNIST-form rendering, PNG and JPEG q60 alike)
LARGE = {  # the digit spans 100 pixels or more: the fitted 28x28 is near the clean rendering
    "light on dark, 200x200": (dict(size=(200, 200)), 25.0),
    "dark on light, 200x200": (dict(size=(200, 200), dark_on_light=True), 25.0),
    "1200x900, shifted up-left": (dict(size=(1200, 900), at=(0.3, 0.35), digit_height=0.4), 25.0),
    "500x200, far right": (dict(size=(500, 200), at=(0.8, 0.5)), 25.0),
    "paper noise and specks": (dict(size=(300, 300), dark_on_light=True, noise=12, specks=6), 25.0),
}
SMALL = {  # about 30 pixels of digit: detail is lost before fitting, so the band is lower
    "40x40": (dict(size=(40, 40)), 18.0),
    "small digit in a noisy 800x600": (dict(size=(800, 600), digit_height=0.12, dark_on_light=True, noise=5), 18.0),
}
REFS = {(d, a): mnist_form(glyph(d, a)) for d in range(10) for a in (0, 6)}


def fitted(pixels: np.ndarray, fmt: str) -> np.ndarray:
    data = encoded(pixels, fmt, "RGB", quality=60) if fmt == "JPEG" else encoded(pixels, fmt)
    out, was_fitted = image_to_pixels(data)
    assert was_fitted and out.shape == (28, 28) and out.dtype == np.float32
    return out


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
@pytest.mark.parametrize("angle", [0, 6])
@pytest.mark.parametrize("name", [*LARGE, *SMALL])
def test_fitted_digit_is_near_its_mnist_form_rendering(name, angle, fmt):
    look, least = {**LARGE, **SMALL}[name]
    scores = []
    for digit in range(10):
        out = fitted(photo(glyph(digit, angle), seed=digit, **look), fmt)
        own = psnr(out, REFS[digit, angle])
        scores.append(own)
        assert own >= least, f"digit {digit}: {own:.1f} dB against its rendering"
        # Nearer its own digit's rendering than any other digit's: the band cannot pass by accident.
        others = max(psnr(out, REFS[d, angle]) for d in range(10) if d != digit)
        assert own > others + 1.0, f"digit {digit}: {own:.1f} dB, another digit {others:.1f} dB"
    assert np.mean(scores) >= least + 2.5


def test_centre_of_mass_at_14_and_box_of_20():
    for digit in (1, 4, 8):
        out = fitted(photo(glyph(digit), size=(300, 260), dark_on_light=True, noise=6), "PNG")
        cy = (out.sum(1) * np.arange(28)).sum() / out.sum()
        cx = (out.sum(0) * np.arange(28)).sum() / out.sum()
        assert abs(cy - 14) < 0.3 and abs(cx - 14) < 0.3
        ys, xs = np.nonzero(out > 0.2)
        assert 18 <= max(np.ptp(ys), np.ptp(xs)) + 1 <= 21
        assert out.max() == 1.0 and out[0].max() == out[-1].max() == 0  # light ink on black, edges clear


def test_specks_far_away_do_not_move_the_box():
    clean = photo(glyph(3), size=(400, 400), dark_on_light=True)
    dusty = clean.copy()
    for y, x in ((10, 10), (380, 30), (20, 370), (370, 380), (200, 15)):
        dusty[y:y + 4, x:x + 4] = 35
    assert psnr(fitted(dusty, "PNG"), fitted(clean, "PNG")) > 40


def test_light_falling_off_across_the_page_is_not_ink():
    yy, xx = np.mgrid[0:300, 0:400]
    shade = 90 * (xx / 400) ** 1.5 + 27 * ((yy - 150) / 150) ** 2  # paper from 225 down to about 110
    for digit in (0, 4, 7):
        px = photo(glyph(digit), size=(400, 300), dark_on_light=True, noise=4, seed=digit).astype(np.float32)
        shaded = np.clip(px - shade * px / 225, 0, 255).astype(np.uint8)
        out = fitted(shaded, "JPEG")
        assert psnr(out, REFS[digit, 0]) > 22, digit


def test_blank_and_flat_images_are_refused():
    for pixels in (np.full((100, 100), 200, np.uint8),
                   np.random.default_rng(0).normal(128, 20, (100, 100)).clip(0, 255).astype(np.uint8)):
        with pytest.raises(ImageError, match="no digit found"):
            image_to_pixels(encoded(pixels))
    with pytest.raises(FitError):
        fit_digit(np.zeros((50, 50), np.float32))


def test_28x28_8bit_files_are_taken_exactly_as_before():
    digit = np.asarray(Image.fromarray((REFS[7, 0] * 255).astype(np.uint8)))
    for mode in ("L", "RGB", "RGBA", "P"):
        data = encoded(digit, "PNG", mode)
        out, was_fitted = image_to_pixels(data)
        assert not was_fitted
        assert np.array_equal(out, np.asarray(Image.open(io.BytesIO(data)).convert("L"), np.float32) / 255)
        assert np.array_equal(png_to_pixels(data), out)
    out, was_fitted = image_to_pixels(encoded(digit), fit="always")  # fit=always: fitted all the same
    assert was_fitted and psnr(out, digit / 255) > 20


def test_fit_none_refuses_other_sizes():
    with pytest.raises(ImageError, match="fit=none"):
        image_to_pixels(encoded(photo(glyph(2), size=(64, 64))), fit="none")


def test_transparent_drawings_both_inks():
    for ink in (0, 255):  # black or white strokes on a transparent canvas (what a browser canvas gives)
        rgba = np.zeros((200, 200, 4), np.uint8)
        rgba[40:160, 90:110] = (ink, ink, ink, 255)
        out, _ = image_to_pixels(encoded(rgba, "PNG", "RGBA"))
        assert out[14, 14] == 1.0 and out[14, 5] == 0.0 and out[3, 14] == 0.0


def test_sixteen_bit_webp_and_exif_rotated_jpeg():
    pixels = photo(glyph(5), size=(160, 160), dark_on_light=True)
    ref = fitted(pixels, "PNG")
    wide = Image.fromarray(pixels.astype(np.uint16) * 257)
    buf = io.BytesIO()
    wide.save(buf, format="PNG")
    assert psnr(image_to_pixels(buf.getvalue())[0], ref) > 40
    assert psnr(image_to_pixels(encoded(pixels, "WEBP", quality=90))[0], ref) > 28
    # A phone stores the picture sideways and says so in EXIF (6: rotate 90 clockwise to view).
    sideways = Image.fromarray(pixels).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    sideways.save(buf, format="JPEG", quality=90, exif=exif)
    assert psnr(image_to_pixels(buf.getvalue())[0], ref) > 28


def test_animated_files_give_their_first_frame():
    first, second = (Image.fromarray(photo(glyph(d), size=(120, 120))) for d in (4, 9))
    for fmt in ("PNG", "WEBP"):
        buf = io.BytesIO()
        first.save(buf, format=fmt, save_all=True, append_images=[second], duration=100, lossless=True)
        assert getattr(Image.open(io.BytesIO(buf.getvalue())), "n_frames", 1) == 2
        out = image_to_pixels(buf.getvalue())[0]
        assert psnr(out, fitted(np.asarray(first), "PNG")) > 35, fmt


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height (a decompression bomb's first bytes)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 1000))
            + chunk(b"IEND", b""))


def test_pixel_limit_is_checked_before_decoding():
    t = time.perf_counter()
    with pytest.raises(ImageTooLarge, match="6000x6000 = 36,000,000 pixels"):
        image_to_pixels(png_claiming(6000, 6000))  # over the default limit of 25 megapixels
    with pytest.raises(ImageTooLarge, match="10000000000 pixels"):
        image_to_pixels(png_claiming(100_000, 100_000))  # 10 gigapixels: Pillow refuses it at open
    with pytest.raises(ImageTooLarge, match="at most 10,000"):
        image_to_pixels(encoded(photo(glyph(1), size=(200, 200))), max_pixels=10_000)
    assert time.perf_counter() - t < 1.0


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_corrupt_and_truncated_files_are_refused(fmt):
    data = encoded(photo(glyph(6), size=(150, 150)), fmt, "RGB")
    with pytest.raises(ImageError, match="readable"):
        image_to_pixels(data[: len(data) // 2])
    if fmt != "WEBP":  # the WebP decoder takes a damaged middle as a (damaged) picture, as browsers do
        with pytest.raises(ImageError, match="readable"):
            image_to_pixels(data[:60] + bytes(len(data) - 60))
    with pytest.raises(ImageError, match="not a PNG, JPEG or WebP"):
        image_to_pixels(b"GIF89a" + data)


def test_components_are_8_connected():
    mask = np.zeros((6, 8), bool)
    mask[0, 0] = mask[1, 1] = True  # diagonal neighbours: one component
    mask[0, 4:7] = mask[1, 6] = mask[2, 4:7] = mask[1, 4] = True  # a ring: one component
    mask[5, 7] = True
    labels = components(mask)
    assert labels[0, 0] == labels[1, 1] and labels[0, 4] == labels[2, 6]
    assert len({labels[0, 0], labels[0, 4], labels[5, 7]}) == 3 and labels[3, 3] == 0
