"""What a receiver can draw without a sender: latents from a vae's prior, and straight lines between two."""

from __future__ import annotations

import math

import numpy as np

from shared.codec.config import ModelConfig

MAX_TEMPERATURE = 10.0  # beyond a few prior stds the decoder shows nothing a digit looks like
MAX_SEED = 2**63 - 1  # any non-negative int64


def sample_prior(config: ModelConfig, n: int, seed: int, temperature: float = 1.0) -> np.ndarray:
    """n latents float32 (n, *code_shape) from the prior N(0, I), its std scaled by temperature.
    The same seed gives the same latents in any process; a larger n keeps the first draws."""
    if not config.has_prior:
        raise ValueError(f"{config.name} is a {config.kind} model: it has no prior to sample from")
    if n < 1 or not 0 <= seed <= MAX_SEED or not (math.isfinite(temperature) and 0 <= temperature <= MAX_TEMPERATURE):
        raise ValueError(f"need n >= 1, 0 <= seed <= {MAX_SEED} and 0 <= temperature <= {MAX_TEMPERATURE}")
    # numpy's generator draws one value after another (torch.randn fills 16 at a time), so a larger n
    # keeps the first draws; PCG64 gives the same stream on every platform
    z = np.random.default_rng(seed).standard_normal((n, *config.code_shape), dtype=np.float32)
    return z * np.float32(temperature)


def interpolate(a: np.ndarray, b: np.ndarray, steps: int) -> np.ndarray:
    """`steps` latents float32 (steps, *a.shape) on the straight line from a to b, both ends included
    exactly: (1 - t) a + t b, with t evenly spaced from 0 to 1."""
    if a.shape != b.shape or steps < 2:
        raise ValueError(f"need two latents of one shape and steps >= 2 (got {a.shape}, {b.shape}, {steps})")
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32).reshape(-1, *([1] * a.ndim))
    return ((1 - t) * a.astype(np.float32) + t * b.astype(np.float32)).astype(np.float32)


def fractions(steps: int) -> list[float]:
    """The t of each interpolated image, 0 to 1."""
    return np.linspace(0.0, 1.0, steps).tolist()
