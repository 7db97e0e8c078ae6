"""Latents <-> codes for a loaded half, in any format its model offers.

Fixed-length formats (f32, u8) are packed by the wire schema alone. The entropy-coded format (rc) needs
the integer tables an rd model holds in both halves: the runtime codes with them. Imports neither half.
"""

from __future__ import annotations

import numpy as np

from shared.codec import wire
from shared.codec.config import ModelConfig
from shared.codec.rangecoder import CodeError
from shared.service.problems import Problem

# variable-length formats are the entropy-coded ones (rc): they need the model's tables
ENTROPY_CODED = [name for name, f in wire.FORMATS.items() if f.variable]
FIXED = [name for name, f in wire.FORMATS.items() if not f.variable]
VARIABLE = "variable"  # what bytes_per_code says of a variable-length format


def formats(config: ModelConfig) -> list[str]:
    """The formats this model's services read and write, its default first."""
    return ENTROPY_CODED + FIXED if config.entropy_coded else list(FIXED)


def bytes_per_code(config: ModelConfig) -> dict[str, int | str]:
    fixed = wire.code_bytes(config.code_numel)
    return {f: fixed.get(f, VARIABLE) for f in formats(config)}


def check_format(config: ModelConfig, fmt: str | None) -> str:
    """The format to use (the model's default for None); 422 for one this model does not offer."""
    offered = formats(config)
    if fmt is None:
        return offered[0]
    if fmt not in offered:
        why = " (entropy-coded formats need an rd model's tables)" if fmt in ENTROPY_CODED else ""
        raise Problem(422, "unsupported-format", f"format {fmt!r} is not offered by {config.name}{why};"
                      f" it reads and writes {', '.join(offered)}")
    return fmt


def to_codes(fingerprint: str, latents: np.ndarray, fmt: str, payloads: list[bytes] | None = None) -> wire.Codes:
    """float32 latents (N, *code_shape) -> codes in fmt (already checked for this model); an entropy-coded
    format takes the payloads the batch's coding pass made (`HalfRuntime.compress`)."""
    if fmt in ENTROPY_CODED:
        assert payloads is not None and len(payloads) == len(latents), "entropy-coded formats need payloads"
        return wire.Codes(fingerprint, fmt, tuple(latents.shape[1:]), tuple(payloads))
    return wire.encode_codes(latents, fingerprint, fmt)


def fixed_latents(codes: wire.Codes) -> np.ndarray:
    """Fixed-length codes already checked to be this model's -> float32 (N, *code_shape); 422 for values
    no encoder makes (NaN, infinities, out of range)."""
    try:
        return wire.decode_codes(codes)
    except wire.WireError as e:
        raise bad_values(e) from None


def checked_latents(latents: np.ndarray) -> np.ndarray:
    """Latents an entropy-coded code decoded to, refused (422) if out of range for any model."""
    try:
        return wire.check_values(latents)
    except wire.WireError as e:
        raise bad_values(e) from None


def bad_values(e: wire.WireError) -> Problem:
    return Problem(422, "bad-code-values", str(e))


def undecodable(e: Exception, fmt: str) -> Exception:
    """A CodeError from decoding fmt codes, as the 422 naming the code (other errors unchanged)."""
    if not isinstance(e, CodeError):
        return e
    return Problem(422, "undecodable-code", f"{e} (a truncated or corrupted {fmt} code, or one made with"
                   " other tables)")
