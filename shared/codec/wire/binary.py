"""The binary form of a batch of codes: one little-endian header, then the codes (see the package doc)."""

from __future__ import annotations

import math
import struct

from shared.codec.wire.formats import (
    FORMAT_IDS,
    FORMATS,
    HEADER,
    MAGIC,
    MAX_NDIM,
    MAX_NUMEL,
    VARIABLE_IDS,
    VERSION,
    Codes,
    WireError,
    read_varint,
    varint,
)


def header_size(ndim: int) -> int:
    return HEADER.size + 4 * ndim


def to_binary(codes: Codes) -> bytes:
    fmt = FORMATS[codes.format]
    head = HEADER.pack(MAGIC, VERSION, fmt.id, len(codes.shape), 0, bytes.fromhex(codes.fingerprint),
                       len(codes), codes.code_length or 0)
    body = (b"".join(varint(len(p)) + p for p in codes.payloads) if fmt.variable
            else b"".join(codes.payloads))
    return head + struct.pack(f"<{len(codes.shape)}I", *codes.shape) + body


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
    if fmt_id in VARIABLE_IDS and fmt_id not in FORMAT_IDS:
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
    if fmt.variable:
        if length:
            raise WireError(f"header says {length} bytes per code; a variable-length format ({fmt.name})"
                            " writes 0 and a varint length before each code")
        return Codes(fp.hex(), fmt.name, tuple(shape), _split_variable(data, head, count))
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


def _split_variable(data: bytes, pos: int, count: int) -> tuple[bytes, ...]:
    """The count codes after pos, each behind its varint length; the body must end with the last."""
    payloads = []
    for i in range(count):
        size, pos = read_varint(data, pos, f"code {i}")
        if pos + size > len(data):
            raise WireError(f"code {i} is {size} bytes but only {len(data) - pos} remain (truncated)")
        payloads.append(data[pos:pos + size])
        pos += size
    if pos != len(data):
        raise WireError(f"{len(data) - pos} bytes after the last of {count} codes (trailing data)")
    return tuple(payloads)


