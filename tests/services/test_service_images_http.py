"""Any image in, over real HTTP: files of any size fitted by the encoder, what the answer says about it, its
limits, and font digits kept through the real pair (compact32)."""

from __future__ import annotations

import base64
import io

import httpx
import numpy as np
import pytest
from digit_images import encoded, glyph, mnist_form, photo, psnr
from PIL import Image
from service_helpers import OCTET, assert_problem, encode_raw, png
from test_service_images import png_claiming

from shared.codec import wire

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
LOOKS = {  # name -> (how the ten digits are shown, file format, encoder options)
    "dark on light paper, noisy JPEG": (dict(size=(300, 300), dark_on_light=True, noise=8), "JPEG", {"quality": 70}),
    "light on dark PNG, 120x160": (dict(size=(120, 160)), "PNG", {}),
    "shifted in a 640x480 WebP": (dict(size=(640, 480), at=(0.3, 0.4), digit_height=0.5), "WEBP", {"quality": 70}),
}
WIRE_FIELDS = ("version", "fingerprint", "format", "shape", "codes")


def files_of(look: dict, fmt: str, opts: dict) -> list[tuple]:
    mode = "L" if fmt == "PNG" else "RGB"
    return [("file", (f"{d}.{fmt.lower()}", encoded(photo(glyph(d), seed=d, **look), fmt, mode, **opts),
                      f"image/{fmt.lower()}")) for d in range(10)]


def unpng(text: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(text))))


def decode_json(dec: httpx.Client, body: dict) -> np.ndarray:
    """Only the codes go to the decoder: the wire fields of the encoder's answer."""
    r = dec.post("/v1/decode", params={"pixels": "true"}, json={k: body[k] for k in WIRE_FIELDS})
    assert r.status_code == 200, r.text
    return np.array(r.json()["pixels"], np.uint8)


@pytest.fixture(scope="module")
def clean_round_trip(enc, dec):
    """Each digit's MNIST-form rendering, and what the pair makes of it: the bar the fitted files must meet."""
    refs = np.rint(np.stack([mnist_form(glyph(d)) for d in range(10)]) * 255).astype(np.uint8)
    recons = decode_json(dec, encode_raw(enc, refs, binary=False).json())
    return refs, np.array([psnr(r / 255, x / 255) for r, x in zip(refs, recons, strict=True)])


@pytest.mark.parametrize("name", LOOKS)
def test_fitted_digits_survive_the_real_pair(enc, dec, clean_round_trip, name):
    refs, clean = clean_round_trip
    r = enc.post("/v1/encode", params={"return_inputs": "true"}, files=files_of(*LOOKS[name]))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["fitted"] == [True] * 10 and len(body["inputs"]) == 10
    inputs = np.stack([unpng(t) for t in body["inputs"]])
    assert min(psnr(i / 255, ref / 255) for i, ref in zip(inputs, refs, strict=True)) > 28
    recons = decode_json(dec, body)
    kept = np.array([psnr(x / 255, ref / 255) for x, ref in zip(recons, refs, strict=True)])
    # compact32 gives 25.4 dB on MNIST; on these font digits 21 to 27 dB, the same from files as from
    # their clean rendering.
    assert kept.min() > 20 and kept.mean() > 23, kept.round(1)
    assert (kept > clean - 1.5).all(), (kept - clean).round(2)


def test_mixed_request_says_which_images_were_fitted(enc, digits):
    jpeg = encoded(photo(glyph(3), size=(200, 240), dark_on_light=True), "JPEG", "RGB", quality=80)
    files = [("file", ("three.jpg", jpeg, "image/jpeg")), ("file", ("mnist.png", png(digits[0]), "image/png"))]
    body = enc.post("/v1/encode", params={"return_inputs": "true"}, files=files).json()
    assert body["fitted"] == [True, False] and body["count"] == 2
    assert np.array_equal(unpng(body["inputs"][1]), digits[0])  # the 28x28 file, exactly as sent
    raw = encode_raw(enc, digits[:1], binary=False).json()
    assert raw["fitted"] == [False] and "inputs" not in raw
    alone = enc.post("/v1/encode", files=files[1:]).json()
    assert alone["fitted"] == [False]
    assert alone["codes"] == raw["codes"]  # the same code, byte for byte, as the raw pixels give
    # In a batch with another image the floats may differ in their last bits (batched convolutions).
    mixed = wire.decode_codes(wire.from_json({k: body[k] for k in WIRE_FIELDS}))[1]
    assert np.allclose(mixed, wire.decode_codes(wire.from_json(raw))[0], atol=1e-4)
    again = enc.post("/v1/encode", params={"fit": "always"}, files=files[1:]).json()
    assert again["fitted"] == [True] and again["codes"][0] != raw["codes"][0]


@pytest.mark.parametrize("kind, fmt", [("image/jpeg", "JPEG"), ("image/webp", "WEBP"), ("image/png", "PNG")])
def test_a_single_image_body_of_each_type(enc, kind, fmt):
    data = encoded(photo(glyph(8), size=(90, 90)), fmt, "RGB")
    r = enc.post("/v1/encode", content=data, headers={"Content-Type": kind})
    assert r.status_code == 200 and r.json()["fitted"] == [True], r.text
    assert_problem(enc.post("/v1/encode", params={"fit": "none"}, content=data, headers={"Content-Type": kind}),
                   422, "90x90", "fit=none")


def test_limits_and_bad_files(enc, digits):
    bomb = png_claiming(6000, 6000)  # 36 megapixels in 60 bytes: refused before decoding
    assert_problem(enc.post("/v1/encode", files=[("file", ("bomb.png", bomb, "image/png"))]), 413,
                   "6000x6000", "at most 25,000,000")
    jpeg = encoded(photo(glyph(2), size=(150, 150)), "JPEG", "RGB")
    assert_problem(enc.post("/v1/encode", content=jpeg[: len(jpeg) // 2], headers={"Content-Type": "image/jpeg"}),
                   422, "readable JPEG")
    assert_problem(enc.post("/v1/encode", params={"fit": "sometimes"}, content=jpeg,
                            headers={"Content-Type": "image/jpeg"}), 422)
    assert_problem(enc.post("/v1/encode", params={"return_inputs": "true"}, content=jpeg,
                            headers={"Content-Type": "image/jpeg", "Accept": OCTET}), 422, "JSON")
    r = enc.post("/v1/encode", content=jpeg, headers={"Content-Type": "image/jpeg", "Accept": OCTET})
    assert r.status_code == 200 and len(wire.from_binary(r.content)) == 1  # and it still serves


def test_cors_is_closed_by_default(enc):
    r = enc.options("/v1/encode", headers={"Origin": "http://elsewhere:8080", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in r.headers
    r = enc.get("/v1/model", headers={"Origin": "http://elsewhere:8080"})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
