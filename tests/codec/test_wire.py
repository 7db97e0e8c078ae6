"""The wire schema: codes round-trip through JSON and binary, and every malformed input is refused clearly."""

from __future__ import annotations

import base64
import json
import struct
import sys

import numpy as np
import pytest

from shared.codec import wire

FP = "0123456789abcdef"


def values(n: int = 3, shape: tuple[int, ...] = (32,), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 3, (n, *shape)).astype(np.float32)


def binary(n: int = 2, fmt: str = "f32", shape: tuple[int, ...] = (32,)) -> bytes:
    return wire.to_binary(wire.encode_codes(values(n, shape), FP, fmt))


def doc(n: int = 2, fmt: str = "f32", **changes) -> dict:
    d = wire.to_json(wire.encode_codes(values(n), FP, fmt))
    d.update(changes)
    return d


@pytest.mark.parametrize("shape", [(32,), (16,), (32, 7, 7)])
def test_f32_round_trips_exactly_in_both_forms(shape):
    v = values(4, shape)
    codes = wire.encode_codes(v, FP, "f32")
    for back in (wire.from_binary(wire.to_binary(codes)), wire.from_json(wire.to_json(codes)),
                 wire.from_json(json.dumps(wire.to_json(codes)))):
        assert back == codes
        np.testing.assert_array_equal(wire.decode_codes(back), v)


def test_u8_round_trips_within_half_a_step():
    v = values(5)
    codes = wire.encode_codes(v, FP, "u8")
    out = wire.decode_codes(wire.from_binary(wire.to_binary(codes)))
    step = (v.max(axis=1) - v.min(axis=1)) / 255
    assert (np.abs(out - v).max(axis=1) <= step * 0.5 + 1e-5).all()
    assert codes.code_length == 8 + 32


def test_u8_of_a_constant_code_is_exact():
    v = np.full((1, 32), 2.5, np.float32)
    np.testing.assert_array_equal(wire.decode_codes(wire.encode_codes(v, FP, "u8")), v)


def test_binary_layout_is_as_documented():
    data = binary(2)
    assert data[:4] == b"AELC" and data[4] == 1 and data[5] == 1 and data[6] == 1 and data[7] == 0
    assert data[8:16] == bytes.fromhex(FP)
    assert struct.unpack_from("<III", data, 16) == (2, 128, 32)
    assert len(data) == wire.header_size(1) + 2 * 128 == 28 + 256
    assert data[28:28 + 128] == values(2)[0].astype("<f4").tobytes()


def test_json_ignores_extra_fields_the_encoder_adds():
    codes = wire.from_json(doc(model="compact32", count=2, code_bytes=128))
    assert len(codes) == 2 and codes.shape == (32,)


def test_code_bytes_per_format():
    assert wire.code_bytes(32) == {"f32": 128, "u8": 40}


def test_empty_batch_is_well_formed():
    codes = wire.from_binary(wire.to_binary(wire.Codes(FP, "f32", (32,), ())))
    assert len(codes) == 0 and wire.decode_codes(codes).shape == (0, 32)


def with_byte(data: bytes, offset: int, value: bytes) -> bytes:
    return data[:offset] + value + data[offset + len(value):]


def nan_code() -> bytes:
    data = bytearray(binary(1))
    data[28:32] = struct.pack("<f", float("nan"))
    return bytes(data)


BAD_BINARY = {
    "empty": (b"", "too short"),
    "short header": (b"AELC\x01", "too short"),
    "bad magic": (with_byte(binary(), 0, b"XXXX"), "magic"),
    "future version": (with_byte(binary(), 4, b"\x02"), "version 2"),
    "unknown format": (with_byte(binary(), 5, b"\x07"), "unknown format id 7"),
    "variable-length format": (with_byte(binary(), 5, b"\x80"), "variable-length"),
    "format zero": (with_byte(binary(), 5, b"\x00"), "unknown format id 0"),
    "ndim zero": (with_byte(binary(), 6, b"\x00"), "ndim 0"),
    "ndim too big": (with_byte(binary(), 6, b"\x09"), "ndim 9"),
    "reserved byte set": (with_byte(binary(), 7, b"\x01"), "reserved"),
    "length disagrees with shape": (with_byte(binary(), 20, struct.pack("<I", 100)), "100 bytes per code"),
    "zero dimension": (with_byte(binary(), 24, struct.pack("<I", 0)), r"shape \[0\] must be positive"),
    "huge shape": (with_byte(with_byte(binary(), 24, struct.pack("<I", 1 << 20)), 20,
                             struct.pack("<I", 4 << 20)), "at most"),
    "truncated codes": (binary(2)[:-1], "truncated"),
    "trailing data": (binary(2) + b"\x00", "trailing data"),
    "count too high": (with_byte(binary(2), 16, struct.pack("<I", 3)), "truncated"),
    "header cut in shape": (binary(1, shape=(32, 7, 7))[:30], "too short for a header with 3"),
}


@pytest.mark.parametrize("data, message", BAD_BINARY.values(), ids=BAD_BINARY.keys())
def test_malformed_binary_is_refused_clearly(data, message):
    with pytest.raises(wire.WireError, match=message):
        wire.from_binary(data)


def u8_with(lo: float, step: float) -> wire.Codes:
    return wire.Codes(FP, "u8", (32,), (struct.pack("<ff", lo, step) + b"\xff" * 32,))


BAD_VALUES = {
    "NaN in f32": (lambda: wire.from_binary(nan_code()), "NaN or infinite"),
    "infinity in f32": (lambda: wire.encode_codes(np.full((1, 32), np.inf, np.float32), FP), "NaN or infinite"),
    "beyond the code limit": (lambda: wire.encode_codes(np.full((1, 32), 1e9, np.float32), FP), "beyond"),
    "u8 NaN scale": (lambda: u8_with(float("nan"), 1.0), "invalid scale"),
    "u8 negative step": (lambda: u8_with(0.0, -1.0), "invalid scale"),
    "u8 overflowing scale": (lambda: u8_with(0.0, 3e38), "NaN or infinite"),
}


@pytest.mark.parametrize("make, message", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_bad_code_values_are_refused_on_decoding(make, message):
    with pytest.raises(wire.WireError, match=message):
        wire.decode_codes(make())


BAD_JSON = {
    "not JSON": ("{nope", "invalid codes JSON"),
    "not an object": ("[1, 2]", "invalid codes JSON"),
    "missing codes": ({k: v for k, v in doc().items() if k != "codes"}, "codes: Field required"),
    "malformed base64": (doc(codes=["***"]), r"codes\[0\] is not valid base64"),
    "base64 without padding": (doc(codes=[doc()["codes"][0].rstrip("=") + "A"]), "base64|bytes"),
    "wrong code length": (doc(codes=[base64.b64encode(b"\x00" * 12).decode()]), "code 0 is 12 bytes"),
    "one short code among good": (doc(codes=[doc()["codes"][0], base64.b64encode(bytes(124)).decode()]),
                                  "code 1 is 124 bytes"),
    "shape disagrees with codes": (doc(shape=[16]), "code 0 is 128 bytes"),
    "empty shape": (doc(shape=[]), "shape must be"),
    "negative shape": (doc(shape=[-32]), "shape must be"),
    "too many dimensions": (doc(shape=[1, 1, 1, 1, 32]), "shape must be"),
    "unknown format": (doc(format="f16"), "unknown code format 'f16'"),
    "short fingerprint": (doc(fingerprint="abc"), "fingerprint must be 16"),
    "uppercase fingerprint": (doc(fingerprint=FP.upper()), "fingerprint must be 16"),
    "future version": (doc(version=2), "version 2"),
    "codes not a list": (doc(codes="AAAA"), "codes: Input should be a valid list"),
}


@pytest.mark.parametrize("body, message", BAD_JSON.values(), ids=BAD_JSON.keys())
def test_malformed_json_is_refused_clearly(body, message):
    with pytest.raises(wire.WireError, match=message):
        wire.from_json(body)


def test_wire_needs_no_torch():
    import subprocess

    code = "import sys, shared.codec.wire; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# --- variable-length codes (rc) ----------------------------------------------------------------------


def rc_codes(lengths=(1, 9, 127, 128, 300), shape=(16, 7, 7)) -> wire.Codes:
    rng = np.random.default_rng(1)
    return wire.Codes(FP, "rc", shape, tuple(rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in lengths))


@pytest.mark.parametrize("n, encoded", [(0, b"\x00"), (1, b"\x01"), (127, b"\x7f"), (128, b"\x80\x01"),
                                        (300, b"\xac\x02"), (16383, b"\xff\x7f"), (16384, b"\x80\x80\x01")])
def test_varints_are_leb128(n, encoded):
    assert wire.varint(n) == encoded and wire.varint_size(n) == len(encoded)
    assert wire.read_varint(b"\x09" + encoded + b"\x09", 1, "x") == (n, 1 + len(encoded))


def test_rc_round_trips_in_both_forms_with_a_varint_before_each_code():
    codes = rc_codes()
    data = wire.to_binary(codes)
    assert data[5] == 0x80 and struct.unpack_from("<I", data, 20) == (0,)  # L = 0: variable length
    head = wire.header_size(3)
    assert data[head:head + 2] == b"\x01" + codes.payloads[0]  # one varint byte, then the code
    assert len(data) == head + sum(codes.framed_lengths) == head + sum(map(len, codes.payloads)) + 3 + 2 * 2  # 1, 9, 127: one byte; 128, 300: two
    for back in (wire.from_binary(data), wire.from_json(wire.to_json(codes))):
        assert back == codes
    assert codes.code_length is None and wire.code_bytes(784) == {"f32": 3136, "u8": 792}


def test_rc_values_need_the_model():
    with pytest.raises(wire.WireError, match="tables"):
        wire.decode_codes(rc_codes())
    with pytest.raises(wire.WireError, match="entropy coded"):
        wire.encode_codes(values(1), FP, "rc")


def rc_binary() -> bytes:
    return wire.to_binary(rc_codes((5, 200)))


BAD_RC = {
    "empty code": (lambda: wire.Codes(FP, "rc", (4,), (b"",)), "code 0 is 0 bytes"),
    "code longer than any": (lambda: wire.Codes(FP, "rc", (4,), (bytes(53),)), "1 to 52 bytes"),
    "L set": (lambda: wire.from_binary(with_byte(rc_binary(), 20, struct.pack("<I", 5))), "variable-length"),
    "cut in a code": (lambda: wire.from_binary(rc_binary()[:-1]), "truncated"),
    "cut in a varint": (lambda: wire.from_binary(rc_binary()[:wire.header_size(3) + 7]), "truncated"),
    "trailing bytes": (lambda: wire.from_binary(rc_binary() + b"\x00"), "trailing data"),
    "count too high": (lambda: wire.from_binary(with_byte(rc_binary(), 16, struct.pack("<I", 3))), "truncated"),
    "overlong varint": (lambda: wire.from_binary(with_byte(rc_binary(), wire.header_size(3), b"\x85\x00")),
                        "minimal"),
    "varint over 4 bytes": (lambda: wire.read_varint(b"\xff\xff\xff\xff\x01", 0, "code 0"), "past 4 bytes"),
    "unknown variable format": (lambda: wire.from_binary(with_byte(rc_binary(), 5, b"\x81")), "variable-length"),
}


@pytest.mark.parametrize("make, message", BAD_RC.values(), ids=BAD_RC.keys())
def test_malformed_rc_is_refused_clearly(make, message):
    with pytest.raises(wire.WireError, match=message):
        make()
