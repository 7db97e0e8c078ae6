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
from shared.service.runtime import HalfRuntime

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


def to_codes(runtime: HalfRuntime, latents: np.ndarray, fmt: str) -> wire.Codes:
    """float32 latents (N, *code_shape) -> codes in fmt (already checked for this model)."""
    fingerprint = runtime.weights.fingerprint
    if fmt in ENTROPY_CODED:  # pure Python work: call from a worker thread, not the event loop
        return wire.Codes(fingerprint, fmt, tuple(latents.shape[1:]), tuple(runtime.compress(latents)))
    return wire.encode_codes(latents, fingerprint, fmt)


def to_latents(runtime: HalfRuntime, codes: wire.Codes) -> np.ndarray:
    """Codes already checked to be this model's (fingerprint, shape) -> float32 (N, *code_shape).
    A code that does not decode or holds values no encoder makes gets 422, naming the code."""
    check_format(runtime.config, codes.format)
    try:
        if codes.format in ENTROPY_CODED:
            return wire.check_values(runtime.decompress(codes.payloads))
        return wire.decode_codes(codes)
    except CodeError as e:
        raise Problem(422, "undecodable-code", f"{e} (a truncated or corrupted {codes.format} code, or one"
                      " made with other tables)") from None
    except wire.WireError as e:
        raise Problem(422, "bad-code-values", str(e)) from None
