"""The wire schema: latent codes as they travel from the sender to the receiver (numpy only, no torch).

A batch of codes always carries the pair fingerprint of the weights that made it, its format and the
shape of one code, so a receiver can refuse codes it cannot decode instead of decoding garbage.

Two forms carry the same batch, and each side reads what the other writes, unchanged:

- JSON (`CodesJSON`): {"version": 1, "fingerprint": "<16 hex>", "format": "f32", "shape": [32],
  "codes": ["<base64>", ...]}; unknown extra fields are ignored.
- Binary (`application/octet-stream`), little-endian:

      offset  size    field
      0       4       magic b"AELC"
      4       1       version (1)
      5       1       format id: 1 = f32, 2 = u8; 0 invalid; 0x80-0xFF reserved for variable-length formats
      6       1       ndim, the number of dimensions of one code (1..4)
      7       1       reserved, 0
      8       8       pair fingerprint, its 16 hex digits as 8 raw bytes
      16      4       count N, u32
      20      4       code length L in bytes, u32 (0 for a variable-length format)
      24      4*ndim  shape of one code, u32 each
      24+4*ndim N*L   the codes, back to back

  A future variable-length format (entropy-coded codes) takes an id >= 0x80, writes L = 0 and puts a
  u32 length before each code; this version rejects such ids with a clear message.

Code formats (fixed length):

- f32: the code's values as float32, `4 * numel` bytes: lossless.
- u8: 8-bit linear quantisation per code: float32 `lo`, float32 `step`, then `numel` bytes q, value =
  lo + q * step; `8 + numel` bytes, about a quarter of f32 for compact models.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

MAGIC = b"AELC"
VERSION = 1
HEADER = struct.Struct("<4sBBBB8sII")  # magic, version, format, ndim, reserved, fingerprint, count, length
MAX_NDIM = 4
MAX_NUMEL = 1 << 16  # far above any model's code (the seed's is 1568 values); bounds what a header may claim
CODE_LIMIT = 1e6  # |value| above this is no code our encoders make; it would overflow the decoder's layers
FINGERPRINT_RE = re.compile(r"^[0-9a-f]{16}$")
VARIABLE_IDS = range(0x80, 0x100)


class WireError(ValueError):
    """Codes that cannot be read: the message says what is wrong and where."""


@dataclass(frozen=True)
class CodeFormat:
    name: str
    id: int
    length: Callable[[int], int]  # numel -> bytes per code
    pack: Callable[[np.ndarray], bytes]  # one code's float values -> payload
    unpack: Callable[[bytes, int], np.ndarray]  # payload, numel -> float32 values


def _pack_f32(values: np.ndarray) -> bytes:
    return np.ascontiguousarray(values, dtype="<f4").tobytes()


def _unpack_f32(payload: bytes, numel: int) -> np.ndarray:
    return np.frombuffer(payload, dtype="<f4", count=numel).astype(np.float32)


def _pack_u8(values: np.ndarray) -> bytes:
    v = np.asarray(values, dtype=np.float64).ravel()
    lo, hi = float(v.min()), float(v.max())
    step = (hi - lo) / 255.0
    q = np.zeros(v.shape, np.uint8) if step == 0 else np.clip(np.rint((v - lo) / step), 0, 255).astype(np.uint8)
    return struct.pack("<ff", lo, step) + q.tobytes()


def _unpack_u8(payload: bytes, numel: int) -> np.ndarray:
    lo, step = struct.unpack_from("<ff", payload)
    if not (math.isfinite(lo) and math.isfinite(step)) or step < 0:
        raise WireError(f"u8 code has an invalid scale (lo={lo}, step={step})")
    q = np.frombuffer(payload, dtype=np.uint8, offset=8, count=numel)
    with np.errstate(over="ignore"):  # an overflow gives inf, which decode_codes refuses by name
        return np.float32(lo) + q.astype(np.float32) * np.float32(step)


FORMATS: dict[str, CodeFormat] = {
    f.name: f
    for f in (
        CodeFormat("f32", 1, lambda n: 4 * n, _pack_f32, _unpack_f32),
        CodeFormat("u8", 2, lambda n: 8 + n, _pack_u8, _unpack_u8),
    )
}
FORMAT_IDS = {f.id: f for f in FORMATS.values()}


def code_format(name: str) -> CodeFormat:
    try:
        return FORMATS[name]
    except KeyError:
        raise WireError(f"unknown code format {name!r}; this version reads {', '.join(FORMATS)}") from None


@dataclass(frozen=True)
class Codes:
    """A batch of codes as bytes, checked on construction: every payload has exactly the right length."""

    fingerprint: str
    format: str
    shape: tuple[int, ...]
    payloads: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.fingerprint, str) or not FINGERPRINT_RE.match(self.fingerprint):
            raise WireError(f"fingerprint must be 16 lowercase hex digits, not {self.fingerprint!r}")
        fmt = code_format(self.format)
        shape = tuple(self.shape)
        if not 1 <= len(shape) <= MAX_NDIM or any(not isinstance(d, int) or d < 1 for d in shape):
            raise WireError(f"shape must be 1 to {MAX_NDIM} positive integers, not {list(shape)}")
        if math.prod(shape) > MAX_NUMEL:
            raise WireError(f"shape {list(shape)} has more than {MAX_NUMEL} values")
        object.__setattr__(self, "shape", shape)
        want = fmt.length(self.numel)
        for i, p in enumerate(self.payloads):
            if len(p) != want:
                raise WireError(
                    f"code {i} is {len(p)} bytes; a {self.format} code of shape {list(shape)} is {want} bytes"
                )

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def code_length(self) -> int:
        return FORMATS[self.format].length(self.numel)

    def __len__(self) -> int:
        return len(self.payloads)


def encode_codes(values: np.ndarray, fingerprint: str, fmt: str = "f32") -> Codes:
    """(N, *shape) float values -> Codes in the given format."""
    values = np.asarray(values, dtype=np.float32)
    if values.ndim < 2:
        raise WireError(f"values must be (N, *code_shape), got shape {values.shape}")
    pack = code_format(fmt).pack
    return Codes(fingerprint, fmt, tuple(values.shape[1:]), tuple(pack(v) for v in values))


def decode_codes(codes: Codes) -> np.ndarray:
    """Codes -> float32 (N, *shape); refuses NaN, infinities and values beyond +-CODE_LIMIT."""
    unpack = FORMATS[codes.format].unpack
    out = np.empty((len(codes), *codes.shape), dtype=np.float32)
    for i, p in enumerate(codes.payloads):
        v = unpack(p, codes.numel)
        if not np.isfinite(v).all():
            raise WireError(f"code {i} holds NaN or infinite values")
        if np.abs(v).max(initial=0.0) > CODE_LIMIT:
            raise WireError(f"code {i} holds values beyond +-{CODE_LIMIT:g}, out of range for any model")
        out[i] = v.reshape(codes.shape)
    return out


# --- binary form -------------------------------------------------------------------------------------


def header_size(ndim: int) -> int:
    return HEADER.size + 4 * ndim


def to_binary(codes: Codes) -> bytes:
    fmt = FORMATS[codes.format]
    head = HEADER.pack(MAGIC, VERSION, fmt.id, len(codes.shape), 0, bytes.fromhex(codes.fingerprint),
                       len(codes), codes.code_length)
    return head + struct.pack(f"<{len(codes.shape)}I", *codes.shape) + b"".join(codes.payloads)


def from_binary(data: bytes) -> Codes:
    """Parse the binary form, checking every field and that the length is exactly what the header says."""
    data = bytes(data)
    if len(data) < HEADER.size:
        raise WireError(f"{len(data)} bytes is too short for a code header ({HEADER.size} bytes at least)")
    magic, version, fmt_id, ndim, reserved, fp, count, length = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise WireError(f"not aelink codes: magic {magic!r}, expected {MAGIC!r}")
    if version != VERSION:
        raise WireError(f"code format version {version} is not supported (this version reads {VERSION})")
    if fmt_id in VARIABLE_IDS:
        raise WireError(f"format id 0x{fmt_id:02x} is a variable-length format this version cannot read")
    if fmt_id not in FORMAT_IDS:
        raise WireError(f"unknown format id {fmt_id}; this version reads "
                        + ", ".join(f"{f.id} ({f.name})" for f in FORMATS.values()))
    if not 1 <= ndim <= MAX_NDIM:
        raise WireError(f"ndim {ndim} out of range 1..{MAX_NDIM}")
    if reserved:
        raise WireError(f"reserved header byte is {reserved}, expected 0")
    head = header_size(ndim)
    if len(data) < head:
        raise WireError(f"{len(data)} bytes is too short for a header with {ndim} dimensions ({head} bytes)")
    shape = struct.unpack_from(f"<{ndim}I", data, HEADER.size)
    fmt = FORMAT_IDS[fmt_id]
    if min(shape) < 1 or math.prod(shape) > MAX_NUMEL:
        raise WireError(f"shape {list(shape)} must be positive with at most {MAX_NUMEL} values")
    if length != fmt.length(math.prod(shape)):
        raise WireError(f"header says {length} bytes per code; a {fmt.name} code of shape {list(shape)}"
                        f" is {fmt.length(math.prod(shape))} bytes")
    if len(data) != head + count * length:
        raise WireError(f"{len(data) - head} bytes of codes after the header; {count} codes of {length}"
                        f" bytes need {count * length}" + (" (truncated)" if len(data) < head + count * length
                                                           else " (trailing data)"))
    body = memoryview(data)[head:]
    payloads = tuple(bytes(body[i * length:(i + 1) * length]) for i in range(count))
    return Codes(fp.hex(), fmt.name, tuple(shape), payloads)


# --- JSON form ---------------------------------------------------------------------------------------


class CodesJSON(BaseModel):
    """A batch of codes in JSON: what the encoder returns and the decoder accepts, unchanged."""

    model_config = ConfigDict(extra="ignore")  # the encoder adds informative fields the decoder skips

    version: int = Field(VERSION, description="wire version; this version reads 1")
    fingerprint: str = Field(description="pair fingerprint of the weights that made the codes (16 hex digits)",
                             examples=["3f9a1c0de2b47a55"])
    format: str = Field(description="code format: 'f32' (float32) or 'u8' (8-bit, per-code scale)",
                        examples=["f32"])
    shape: list[int] = Field(description="shape of one code, e.g. [32]", examples=[[32]])
    codes: list[str] = Field(description="one standard base64 string per code")


def to_json(codes: Codes) -> dict:
    return {
        "version": VERSION, "fingerprint": codes.fingerprint, "format": codes.format,
        "shape": list(codes.shape), "codes": [base64.b64encode(p).decode("ascii") for p in codes.payloads],
    }


def from_json(doc: CodesJSON | dict | str | bytes) -> Codes:
    """Parse the JSON form (a model, a dict or the text), with messages that point at the bad field."""
    from pydantic import ValidationError

    try:
        if isinstance(doc, str | bytes):
            doc = CodesJSON.model_validate_json(doc)
        elif isinstance(doc, dict):
            doc = CodesJSON.model_validate(doc)
    except ValidationError as e:
        raise WireError("invalid codes JSON: " + "; ".join(
            f"{'.'.join(map(str, err['loc'])) or 'body'}: {err['msg']}" for err in e.errors())) from None
    if doc.version != VERSION:
        raise WireError(f"code format version {doc.version} is not supported (this version reads {VERSION})")
    payloads = []
    for i, text in enumerate(doc.codes):
        try:
            payloads.append(base64.b64decode(text, validate=True))
        except (binascii.Error, ValueError):
            raise WireError(f"codes[{i}] is not valid base64") from None
    return Codes(doc.fingerprint, doc.format, tuple(doc.shape), tuple(payloads))


def code_bytes(numel: int) -> dict[str, int]:
    """Bytes per code in each format, for a code of `numel` values."""
    return {name: f.length(numel) for name, f in FORMATS.items()}
