"""A vae's fitted prior: a Gaussian mixture over the flattened latent, held by the decoder half.

A VAE's decoder has seen codes only where the encoder puts them, and the aggregate of its posteriors is
far from N(0, I): digits drawn from N(0, I) are often blurs between classes. A mixture fitted to the
training set's codes after training (ex-post density estimation, Ghosh et al. 2020, "From Variational to
Deterministic Autoencoders") draws where the codes are. Its tensors are plain buffers, saved in
`decoder.safetensors` and checked by the strict load like every other tensor; training fits them
(aelink.training.mixture), this module only holds and checks them.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

WEIGHT_SUM_TOLERANCE = 1e-4  # float32 weights of up to a few hundred components sum to 1 within this


class MixturePrior(nn.Module):
    """K full-covariance Gaussians over D numbers: `weights` (K,), `means` (K, D) and `scale_tril`
    (K, D, D), each covariance's lower Cholesky factor. A fresh module holds zero weights: it is not a
    distribution until `load` fills it, and `check` refuses it until then."""

    def __init__(self, components: int, dims: int) -> None:
        super().__init__()
        if components < 1 or dims < 1:
            raise ValueError("a mixture needs at least one component and one dimension")
        self.components, self.dims = components, dims
        self.register_buffer("weights", torch.zeros(components))
        self.register_buffer("means", torch.zeros(components, dims))
        self.register_buffer("scale_tril", torch.zeros(components, dims, dims))

    @torch.no_grad()
    def load(self, weights: np.ndarray, means: np.ndarray, scale_tril: np.ndarray) -> None:
        """Take a fitted mixture (any float arrays of the buffers' shapes); refuses one that is not valid."""
        new = {"weights": weights, "means": means, "scale_tril": scale_tril}
        for name, value in new.items():
            buffer = getattr(self, name)
            value = torch.as_tensor(np.asarray(value, dtype=np.float32))
            if value.shape != buffer.shape:
                raise ValueError(f"mixture {name} is {tuple(value.shape)}, expected {tuple(buffer.shape)}")
            new[name] = value
        weights = new["weights"].double()
        new["weights"] = (weights / weights.sum()).float()  # float32 rounding: sum to 1 again
        for name, value in new.items():
            getattr(self, name).copy_(value)
        self.check()

    def check(self) -> None:
        """ValueError unless the buffers are a distribution: finite, weights >= 0 summing to 1, each
        scale_tril lower triangular with a positive diagonal (a valid Cholesky factor)."""
        if not all(bool(torch.isfinite(t).all()) for t in (self.weights, self.means, self.scale_tril)):
            raise ValueError("non-finite values")
        if bool((self.weights < 0).any()) or abs(self.weights.double().sum().item() - 1) > WEIGHT_SUM_TOLERANCE:
            raise ValueError(f"the weights must be >= 0 and sum to 1 (they sum to {self.weights.sum().item():.6g}):"
                             " is the prior fitted?")
        if bool(torch.triu(self.scale_tril, diagonal=1).any()):
            raise ValueError("scale_tril is not lower triangular")
        if not bool((torch.diagonal(self.scale_tril, dim1=1, dim2=2) > 0).all()):
            raise ValueError("scale_tril has a diagonal entry <= 0")

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """weights, means and scale_tril as float64 numpy arrays (sampling works in float64)."""
        return tuple(t.detach().cpu().double().numpy() for t in (self.weights, self.means, self.scale_tril))

    def covariances(self) -> np.ndarray:
        """(K, D, D): L L^T per component."""
        tril = self.arrays()[2]
        return tril @ tril.transpose(0, 2, 1)
