"""What a receiver can draw without a sender: latents from a vae's prior (N(0, I), or the mixture its
decoder half holds), and straight lines between two."""

from __future__ import annotations

import math

import numpy as np

from shared.codec.config import ModelConfig
from shared.codec.mixture import MixturePrior

MAX_TEMPERATURE = 10.0  # beyond a few prior stds the decoder shows nothing a digit looks like
MAX_SEED = 2**63 - 1  # any non-negative int64
PRIORS = ("fitted", "standard")  # a vae's mixture fitted to its training codes, and N(0, I)


def sample_prior(config: ModelConfig, n: int, seed: int, temperature: float = 1.0,
                 mixture: MixturePrior | None = None) -> np.ndarray:
    """n latents float32 (n, *code_shape) from the prior, its spread scaled by temperature: N(0, I)
    without `mixture`; with one, each draw picks a component by its weight and is mean_k +
    temperature * L_k @ eps (temperature 0: the components' means). The same seed gives the same latents
    in any process; a larger n keeps the first draws."""
    if not config.has_prior:
        raise ValueError(f"{config.name} is a {config.kind} model: it has no prior to sample from")
    if n < 1 or not 0 <= seed <= MAX_SEED or not (math.isfinite(temperature) and 0 <= temperature <= MAX_TEMPERATURE):
        raise ValueError(f"need n >= 1, 0 <= seed <= {MAX_SEED} and 0 <= temperature <= {MAX_TEMPERATURE}")
    # numpy's generator draws one value after another (torch.randn fills 16 at a time), so a larger n
    # keeps the first draws; PCG64 gives the same stream on every platform
    eps = np.random.default_rng(seed).standard_normal((n, *config.code_shape), dtype=np.float32)
    if mixture is None:
        return eps * np.float32(temperature)
    weights, means, tril = mixture.arrays()
    if means.shape[1] != config.code_numel:
        raise ValueError(f"the mixture is over {means.shape[1]} numbers, {config.name}'s latent has {config.code_numel}")
    # the components from a stream of their own (the noise is the same draw as N(0, I)'s), one uniform
    # per digit, so a larger n keeps the first choices too
    u = np.random.default_rng([seed, 1]).random(n)
    k = np.minimum(np.searchsorted(np.cumsum(weights), u, side="right"), len(weights) - 1)
    noise = np.einsum("nij,nj->ni", tril[k], eps.reshape(n, -1).astype(np.float64))
    z = means[k] + temperature * noise
    return z.astype(np.float32).reshape(n, *config.code_shape)


def choose_prior(decoder, which: str | None) -> tuple[str, MixturePrior | None]:
    """The prior a request asks of a decoder: "fitted" (the mixture it holds), "standard" (N(0, I)), or
    None, the model's default (fitted if it holds one). Returns its name and the mixture (None: N(0, I));
    ValueError when "fitted" is asked of a model without one."""
    if which not in (None, *PRIORS):
        raise ValueError(f"prior must be one of {PRIORS}, not {which!r}")
    mixture = getattr(decoder, "prior", None)
    if which == "fitted" and mixture is None:
        raise ValueError(f"{decoder.config.name} holds no fitted prior, only N(0, I): ask for prior"
                         " \"standard\" (or leave it out)")
    if which == "standard" or mixture is None:
        return "standard", None
    return "fitted", mixture


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
