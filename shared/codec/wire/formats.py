"""Code formats (f32, u8, rc), the checked `Codes` batch, and LEB128 varints: the wire's vocabulary."""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

MAGIC = b"AELC"
VERSION = 1
HEADER = struct.Struct("<4sBBBB8sII")  # magic, version, format, ndim, reserved, fingerprint, count, length
MAX_NDIM = 4
MAX_NUMEL = 1 << 16  # far above any model's code (the seed's is 1568 values); bounds what a header may claim
CODE_LIMIT = 1e6  # |value| above this is no code our encoders make; it would overflow the decoder's layers
FINGERPRINT_RE = re.compile(r"^[0-9a-f]{16}$")
VARIABLE_IDS = range(0x80, 0x100)
MAX_VARINT_BYTES = 4  # 28 bits of length: far above max_code_length of any shape allowed


class WireError(ValueError):
    """Codes that cannot be read: the message says what is wrong and where."""


@dataclass(frozen=True)
class CodeFormat:
    name: str
    id: int
    length: Callable[[int], int] | None  # numel -> bytes per code; None: variable length
    pack: Callable[[np.ndarray], bytes] | None = None  # one code's float values -> payload
    unpack: Callable[[bytes, int], np.ndarray] | None = None  # payload, numel -> float32 values

    @property
    def variable(self) -> bool:
        return self.length is None


def max_code_length(numel: int) -> int:
    """The longest variable-length code of numel values a receiver accepts: what the range coder writes
    for values escaped as far as int32 reaches (16 + 65 bits each), plus its last byte."""
    return 11 * numel + 8


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
        CodeFormat("rc", 0x80, None),
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
        if fmt.variable:
            longest = max_code_length(self.numel)
            for i, p in enumerate(self.payloads):
                if not 1 <= len(p) <= longest:
                    raise WireError(f"code {i} is {len(p)} bytes; a {self.format} code of shape {list(shape)}"
                                    f" is 1 to {longest} bytes")
            return
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
    def code_length(self) -> int | None:
        """Bytes of every code in a fixed-length format; None for a variable-length one."""
        fmt = FORMATS[self.format]
        return None if fmt.variable else fmt.length(self.numel)

    @property
    def framed_lengths(self) -> list[int]:
        """Bytes each code takes in the binary form's body: the code, and its varint when variable."""
        if FORMATS[self.format].variable:
            return wire_bytes(self.payloads)
        return [len(p) for p in self.payloads]

    def __len__(self) -> int:
        return len(self.payloads)


def encode_codes(values: np.ndarray, fingerprint: str, fmt: str = "f32") -> Codes:
    """(N, *shape) float values -> Codes in the given format."""
    values = np.asarray(values, dtype=np.float32)
    if values.ndim < 2:
        raise WireError(f"values must be (N, *code_shape), got shape {values.shape}")
    pack = code_format(fmt).pack
    if pack is None:
        raise WireError(f"{fmt} codes are entropy coded with a model's tables, not packed from values")
    return Codes(fingerprint, fmt, tuple(values.shape[1:]), tuple(pack(v) for v in values))


def check_values(values: np.ndarray) -> np.ndarray:
    """Refuse codes (N, ...) holding NaN, infinities or values beyond +-CODE_LIMIT, naming the first."""
    for i, v in enumerate(values):
        if not np.isfinite(v).all():
            raise WireError(f"code {i} holds NaN or infinite values")
        if np.abs(v).max(initial=0.0) > CODE_LIMIT:
            raise WireError(f"code {i} holds values beyond +-{CODE_LIMIT:g}, out of range for any model")
    return values


def decode_codes(codes: Codes) -> np.ndarray:
    """Codes -> float32 (N, *shape); refuses NaN, infinities and values beyond +-CODE_LIMIT."""
    unpack = FORMATS[codes.format].unpack
    if unpack is None:
        raise WireError(f"{codes.format} codes are entropy coded: only the model's tables decode them")
    out = np.empty((len(codes), *codes.shape), dtype=np.float32)
    for i, p in enumerate(codes.payloads):
        out[i] = unpack(p, codes.numel).reshape(codes.shape)
    return check_values(out)


# --- varints (LEB128, unsigned) ----------------------------------------------------------------------


def varint(n: int) -> bytes:
    """n >= 0 as LEB128: 7 bits a byte, least significant first, the high bit set on all but the last."""
    if n < 0:
        raise ValueError(f"a varint is unsigned, not {n}")
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def varint_size(n: int) -> int:
    return max(1, -(-n.bit_length() // 7))


def wire_bytes(codes: Sequence[bytes]) -> list[int]:
    """Bytes each variable-length code takes on the wire: itself and its varint length."""
    return [varint_size(len(c)) + len(c) for c in codes]


def read_varint(data: bytes, pos: int, what: str) -> tuple[int, int]:
    """(value, position after it); refuses a varint cut short, overlong (non-minimal) or too long."""
    value = 0
    for i in range(MAX_VARINT_BYTES):
        if pos + i >= len(data):
            raise WireError(f"{what}: the body ends inside its length varint (truncated)")
        byte = data[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if i and not byte:
                raise WireError(f"{what}: its length varint has a redundant zero byte (not minimal LEB128)")
            return value, pos + i + 1
    raise WireError(f"{what}: its length varint runs past {MAX_VARINT_BYTES} bytes")


def code_bytes(numel: int) -> dict[str, int]:
    """Bytes per code in each fixed-length format, for a code of `numel` values."""
    return {name: f.length(numel) for name, f in FORMATS.items() if not f.variable}
