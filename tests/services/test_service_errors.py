"""Bad requests get a clear 4xx problem-details answer, never a 500, and the services keep serving."""

from __future__ import annotations

import io
import json
import struct
from types import SimpleNamespace

import pytest
from PIL import Image
from service_helpers import OCTET, TOKEN, assert_problem, b64, encode_raw, png

from shared.codec import wire

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
JSON_TYPE = {"Content-Type": "application/json"}
RAW = {"Content-Type": OCTET}


@pytest.fixture(scope="module")
def ctx(enc, digits):
    codes = wire.from_binary(encode_raw(enc, digits[:2]).content)
    return SimpleNamespace(digits=digits, codes=codes, binary=wire.to_binary(codes), json=wire.to_json(codes),
                           fp=codes.fingerprint)


def png_of(size=(28, 28), mode="L") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, format="PNG")
    return buf.getvalue()


def multipart(*parts: tuple) -> dict:
    return {"files": list(parts)}


def json_text(text: str) -> dict:
    return {"content": text, "headers": JSON_TYPE}


def patched(data: bytes, offset: int, value: bytes) -> bytes:
    return data[:offset] + value + data[offset + len(value):]


def with_value(c, value: float) -> bytes:
    return patched(c.binary, 28, struct.pack("<f", value))


def chunks(total: int):
    for _ in range(total // 65536 + 1):
        yield b"\x00" * 65536


ENCODER_CASES = {  # name -> (request kwargs from ctx, status, words the detail must hold)
    "empty body": (lambda c: {"content": b"", "headers": RAW}, 400, ["empty"]),
    "no content type": (lambda c: {"content": b"\x00" * 784}, 415, ["multipart/form-data"]),
    "text/plain": (lambda c: {"content": "hello", "headers": {"Content-Type": "text/plain"}}, 415, ["text/plain"]),
    "malformed JSON": (lambda c: json_text("{images: ["), 400, ["not valid JSON"]),
    "JSON with neither field": (lambda c: {"json": {}}, 422, ["exactly one"]),
    "JSON with both fields": (lambda c: {"json": {"images": [], "pixels": []}}, 422, ["exactly one"]),
    "JSON unknown field": (lambda c: {"json": {"pixels": c.digits[:1].tolist(), "x": 1}}, 422, ["x"]),
    "malformed base64": (lambda c: {"json": {"images": ["not*base64"]}}, 422, ["images[0]", "base64"]),
    "base64 of not a PNG": (lambda c: {"json": {"images": [b64(b"GIF89a....")]}}, 422, ["not a PNG"]),
    "empty image list": (lambda c: {"json": {"images": []}}, 400, ["no images"]),
    "PNG of 32x32, fit=none": (lambda c: {**multipart(("file", ("big.png", png_of((32, 32)), "image/png"))),
                                          "params": {"fit": "none"}}, 422, ["32x32", "28x28", "fit=none"]),
    "blank PNG of 32x32": (lambda c: multipart(("file", ("big.png", png_of((32, 32)), "image/png"))), 422,
                           ["32x32", "no digit"]),
    "huge PNG header, fit=none": (lambda c: {**multipart(("file", ("h.png", png_of((4000, 4000)), "image/png"))),
                                             "params": {"fit": "none"}}, 422, ["4000x4000"]),
    "16-bit PNG, fit=none": (lambda c: {**multipart(("file", ("d.png", png_of(mode="I;16"), "image/png"))),
                                        "params": {"fit": "none"}}, 422, ["mode"]),
    "truncated PNG": (lambda c: multipart(("file", ("t.png", png(c.digits[0])[:40], "image/png"))), 422, ["readable"]),
    "empty file": (lambda c: multipart(("file", ("e.png", b"", "image/png"))), 422, ["empty"]),
    "form text field": (lambda c: {"data": {"file": "hello"}, "files": [("other", ("d.png", png(c.digits[0])))]},
                        422, ["not a file upload"]),
    "multipart without parts": (lambda c: {"content": b"--xx--\r\n",
                                           "headers": {"Content-Type": "multipart/form-data; boundary=xx"}},
                                400, ["no images"]),
    "pixels 28x27": (lambda c: {"json": {"pixels": [[row[:27] for row in c.digits[0].tolist()]]}}, 422,
                     ["(1, 28, 27)"]),
    "pixels of one image, not a list": (lambda c: {"json": {"pixels": c.digits[0].tolist()}}, 422,
                                        ["(N,28,28)", "(28, 28)"]),
    "pixels not a list": (lambda c: {"json": {"pixels": 7}}, 422, ["pixels"]),
    "boolean pixels": (lambda c: {"json": {"pixels": [[[True] * 28] * 28]}}, 422, ["numbers"]),
    "ragged pixels": (lambda c: {"json": {"pixels": [c.digits[0].tolist()[:-1] + [[0] * 5]]}}, 422, ["rectangular"]),
    "pixel 256": (lambda c: {"json": {"pixels": [[[256] * 28] * 28]}}, 422, ["0..255"]),
    "pixel -1": (lambda c: {"json": {"pixels": [[[-1] * 28] * 28]}}, 422, ["0..255"]),
    "float pixel 1.5": (lambda c: {"json": {"pixels": [[[1.5] * 28] * 28]}}, 422, ["[0,1]"]),
    "NaN pixel": (lambda c: json_text('{"pixels": [[' + ",".join(["[" + ",".join(["NaN"] * 28) + "]"] * 28)
                                      + "]]}"), 422, ["NaN"]),
    "string pixels": (lambda c: {"json": {"pixels": [[["a"] * 28] * 28]}}, 422, ["numbers"]),
    "pixel errors are summed up": (lambda c: {"json": {"images": list(range(100))}}, 422, ["and 95 more"]),
    "raw length 785": (lambda c: {"content": b"\x00" * 785, "headers": RAW}, 422, ["multiple of 784"]),
    "257 raw images": (lambda c: {"content": b"\x00" * 784 * 257, "headers": RAW}, 413, ["257", "256"]),
    "body over the byte limit": (lambda c: {"content": b"\x00" * (1024 * 1024 + 784), "headers": RAW},
                                 413, ["exceeds"]),
    "chunked body over the limit": (lambda c: {"content": chunks(1024 * 1024), "headers": RAW}, 413, ["exceeds"]),
    "unknown format": (lambda c: {"params": {"format": "f16"}, "content": b"\x00" * 784, "headers": RAW},
                       422, ["format"]),
    "unacceptable Accept": (lambda c: {"content": b"\x00" * 784, "headers": {**RAW, "Accept": "image/png"}},
                            406, ["application/octet-stream"]),
}


@pytest.mark.parametrize("make, status, words", ENCODER_CASES.values(), ids=ENCODER_CASES.keys())
def test_bad_encode_requests(enc, ctx, make, status, words):
    assert_problem(enc.post("/v1/encode", **make(ctx)), status, *words)
    assert enc.get("/healthz").status_code == 200


def json_codes(c, **changes) -> dict:
    return {"json": {**c.json, **changes}}


DECODER_CASES = {
    "empty body": (lambda c: {"content": b"", "headers": RAW}, 400, ["empty"]),
    "text/plain": (lambda c: {"content": "x", "headers": {"Content-Type": "text/plain"}}, 415, ["application/json"]),
    "malformed JSON": (lambda c: json_text('{"codes": '), 400, ["not valid JSON"]),
    "JSON missing fields": (lambda c: {"json": {"codes": []}}, 422, ["fingerprint", "format", "shape"]),
    "malformed base64": (lambda c: json_codes(c, codes=["@@@"]), 400, ["codes[0]", "base64"]),
    "wrong code length": (lambda c: json_codes(c, codes=[b64(bytes(100))]), 400, ["code 0 is 100 bytes", "128"]),
    "wrong shape": (lambda c: json_codes(c, shape=[16], codes=[b64(bytes(64))]), 422, ["[16]", "[32]"]),
    "unknown format": (lambda c: json_codes(c, format="f16"), 400, ["f16"]),
    "bad fingerprint text": (lambda c: json_codes(c, fingerprint="zz"), 400, ["fingerprint"]),
    "no codes": (lambda c: json_codes(c, codes=[]), 400, ["no codes"]),
    "257 codes": (lambda c: json_codes(c, codes=c.json["codes"][:1] * 257), 413, ["257", "256"]),
    "bad magic": (lambda c: {"content": patched(c.binary, 0, b"GIF8"), "headers": RAW}, 400, ["magic"]),
    "truncated": (lambda c: {"content": c.binary[:-3], "headers": RAW}, 400, ["truncated"]),
    "trailing bytes": (lambda c: {"content": c.binary + b"\x00", "headers": RAW}, 400, ["trailing"]),
    "header only half there": (lambda c: {"content": c.binary[:10], "headers": RAW}, 400, ["too short"]),
    "future version": (lambda c: {"content": patched(c.binary, 4, b"\x09"), "headers": RAW}, 400, ["version 9"]),
    "variable-length format": (lambda c: {"content": patched(c.binary, 5, b"\x81"), "headers": RAW}, 400,
                               ["variable-length"]),
    "NaN in a code": (lambda c: {"content": with_value(c, float("nan")), "headers": RAW}, 422, ["NaN"]),
    "value out of range": (lambda c: {"content": with_value(c, 3e30), "headers": RAW}, 422, ["beyond"]),
    "PNG answer for two codes": (lambda c: {"content": c.binary, "headers": {**RAW, "Accept": "image/png"}},
                                 406, ["one image"]),
    "unacceptable Accept": (lambda c: {"content": c.binary, "headers": {**RAW, "Accept": "text/html"}}, 406,
                            ["image/png"]),
    "bad pixels flag": (lambda c: {"params": {"pixels": "maybe"}, "content": c.binary, "headers": RAW}, 422,
                        ["pixels"]),
}


@pytest.mark.parametrize("make, status, words", DECODER_CASES.values(), ids=DECODER_CASES.keys())
def test_bad_decode_requests(dec, ctx, make, status, words):
    assert_problem(dec.post("/v1/decode", **make(ctx)), status, *words)
    assert dec.get("/healthz").status_code == 200


@pytest.mark.parametrize("form", ["json", "binary"])
def test_codes_from_other_weights_get_409_naming_both_fingerprints(dec, ctx, form):
    other = "0123456789abcdef"
    if form == "json":
        r = dec.post("/v1/decode", json={**ctx.json, "fingerprint": other})
    else:
        r = dec.post("/v1/decode", content=patched(ctx.binary, 8, bytes.fromhex(other)), headers=RAW)
    assert_problem(r, 409, other, ctx.fp)


def test_wrong_method_and_unknown_path_are_problems_too(enc, dec):
    assert_problem(enc.get("/v1/encode"), 405)
    assert_problem(dec.get("/v1/nothing-here"), 404)


def test_no_request_above_caused_a_server_error(services, enc, dec):
    """The catch-all handler logs every unhandled error: after all the bad requests, none was."""
    assert enc.get("/readyz").status_code == dec.get("/readyz").status_code == 200
    for svc in (services.encoder, services.decoder):
        log = svc.output()
        assert "Traceback" not in log and "unhandled error" not in log, log[-3000:]
        assert '" 500' not in log


# --- bearer token ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def guarded(services):
    import httpx

    with httpx.Client(base_url=services.guarded.url, timeout=30) as c:
        yield c


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"},
                                     {"Authorization": TOKEN}], ids=["none", "wrong", "basic", "no scheme"])
@pytest.mark.parametrize("path", ["/v1/model", "/v1/models", "/v1/encode"])
def test_token_guards_v1(guarded, path, headers):
    r = guarded.post(path, headers=headers) if path == "/v1/encode" else guarded.get(path, headers=headers)
    assert_problem(r, 401)
    assert r.headers["www-authenticate"].startswith("Bearer")


def test_token_opens_v1_and_health_stays_open(guarded, ctx):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert guarded.get("/v1/model", headers=auth).status_code == 200
    r = guarded.post("/v1/encode", content=ctx.digits[:2].tobytes(), headers={**auth, **RAW})
    assert r.status_code == 200 and r.json()["count"] == 2
    for path in ("/healthz", "/readyz", "/metrics"):
        assert guarded.get(path).status_code == 200, path


def test_problem_bodies_are_rfc9457(enc):
    body = json.loads(enc.post("/v1/encode", content=b"", headers=RAW).content)
    assert set(body) >= {"type", "title", "status", "detail"} and body["instance"] == "/v1/encode"
    assert body["status"] == 400 and isinstance(body["status"], int)
