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
      24+4*ndim       fixed length: N*L bytes, the codes back to back; variable length (id >= 0x80):
                      for each code its length in bytes as an unsigned LEB128 varint (1 byte below
                      128, 2 below 16384), then the code

Code formats:

- f32 (1): the code's values as float32, `4 * numel` bytes: lossless.
- u8 (2): 8-bit linear quantisation per code: float32 `lo`, float32 `step`, then `numel` bytes q, value =
  lo + q * step; `8 + numel` bytes, about a quarter of f32 for compact models.
- rc (0x80, variable length): the latent quantized and range coded with the integer tables both halves
  of an entropy-coded (rd) model hold (shared.codec.tables); as long as its information, 1 byte at least.
  This module only frames such codes: their values need the model's tables (`decode_codes` refuses).
"""

from shared.codec.wire.binary import from_binary, header_size, to_binary
from shared.codec.wire.formats import (
    CODE_LIMIT,
    FINGERPRINT_RE,
    FORMAT_IDS,
    FORMATS,
    HEADER,
    MAGIC,
    MAX_NDIM,
    MAX_NUMEL,
    MAX_VARINT_BYTES,
    VARIABLE_IDS,
    VERSION,
    CodeFormat,
    Codes,
    WireError,
    check_values,
    code_bytes,
    code_format,
    decode_codes,
    encode_codes,
    max_code_length,
    read_varint,
    varint,
    varint_size,
    wire_bytes,
)
from shared.codec.wire.jsonform import CodesJSON, from_json, to_json

__all__ = [
    "CODE_LIMIT", "FINGERPRINT_RE", "FORMAT_IDS", "FORMATS", "HEADER", "MAGIC", "MAX_NDIM", "MAX_NUMEL",
    "MAX_VARINT_BYTES", "VARIABLE_IDS", "VERSION", "CodeFormat", "Codes", "CodesJSON", "WireError",
    "check_values", "code_bytes", "code_format", "decode_codes", "encode_codes", "from_binary", "from_json",
    "header_size", "max_code_length", "read_varint", "to_binary", "to_json", "varint", "varint_size",
    "wire_bytes",
]
