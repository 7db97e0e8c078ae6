"""The learned factorized prior of rd models and its export to integer coding tables (training only).

`FactorizedPrior` learns one density per latent channel (Balle et al. 2018, "Variational image compression
with a scale hyperprior", appendix 6.1; CompressAI's EntropyBottleneck). Its `forward` adds uniform noise
while training and rounds at eval; loss = distortion + lambda * rate_bits(likelihoods) / N. At export,
`build_tables(prior)` turns the densities into the integer tables (plain tensors) that both halves hold in
an `EntropyTables` module (shared.codec.tables), so sender and receiver code with the same integers.

Quantiles (medians and the tails that bound the tables' support) are not learned with CompressAI's
auxiliary loss: the learned cdf is monotone by construction (positive weights, tanh factors > -1),
so `quantiles()` finds them by bisection whenever they are needed. They are exact at any point of
training and need no second optimizer or extra loss term.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from shared.codec.rangecoder import make_table
from shared.codec.tables import MAX_SUPPORT

_BISECTION_STEPS = 40  # a bracket [-2**k, 2**k] shrinks to 2**(k-39): below float32's resolution


class _LowerBound(torch.autograd.Function):
    """max(x, bound), whose gradient still flows where it would lift x back above the bound."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, bound: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.bound = bound
        return x.clamp_min(bound)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        return grad * ((x >= ctx.bound) | (grad < 0)), None


class FactorizedPrior(nn.Module):
    """One learned univariate density per channel; y is (N, C) or (N, C, *spatial)."""

    def __init__(
        self,
        channels: int,
        filters: Sequence[int] = (3, 3, 3),
        init_scale: float = 10.0,
        tail_mass: float = 1e-9,
        likelihood_bound: float = 1e-9,
    ) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError("a prior needs at least one channel")
        self.channels = channels
        self.tail_mass = tail_mass
        self.likelihood_bound = likelihood_bound
        dims = (1, *filters, 1)
        # The init makes the cdf's slope about 1 / init_scale: a wide density to learn down from.
        scale = init_scale ** (1 / (len(dims) - 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(dims) - 1):
            init = math.log(math.expm1(1 / scale / dims[i + 1]))  # softplus(init) = that slope
            self.matrices.append(nn.Parameter(torch.full((channels, dims[i + 1], dims[i]), init)))
            self.biases.append(nn.Parameter(torch.rand(channels, dims[i + 1], 1) - 0.5))
            if i < len(dims) - 2:
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[i + 1], 1)))

    def logits_cdf(self, x: torch.Tensor) -> torch.Tensor:
        """The cdf's logits at x (C, 1, M) -> (C, 1, M); monotone increasing in x."""
        logits = x
        for i, (matrix, bias) in enumerate(zip(self.matrices, self.biases, strict=True)):
            logits = torch.matmul(F.softplus(matrix), logits) + bias  # (C, d_out, M)
            if i < len(self.factors):  # slope 1 + tanh(f) * tanh'(.) > 0: still monotone
                logits = logits + torch.tanh(self.factors[i]) * torch.tanh(logits)
        return logits

    def bin_probability(self, x: torch.Tensor) -> torch.Tensor:
        """P(x - 0.5 < Y < x + 0.5) for x (C, 1, M), without the lower bound."""
        lower, upper = self.logits_cdf(torch.cat([x - 0.5, x + 0.5], dim=2)).chunk(2, dim=2)
        # Take the difference on the side of the median, where sigmoid is far from 1: no cancellation.
        sign = -torch.sign(lower + upper).detach()
        return torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))

    def forward(self, y: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(y_tilde, likelihoods), both shaped like y: noisy y in training (the noise from `generator`,
        default the global one), quantised y at eval."""
        if y.dim() < 2 or y.shape[1] != self.channels:
            raise ValueError(f"expected (N, {self.channels}, ...) latents, got {tuple(y.shape)}")
        x = y.movedim(1, 0)  # (C, N, *spatial)
        shape = x.shape
        x = x.reshape(self.channels, 1, -1)  # (C, 1, M)
        if self.training:
            x = x + torch.empty_like(x).uniform_(-0.5, 0.5, generator=generator)
        else:
            medians = self.quantiles()[:, 1].view(-1, 1, 1)  # (C, 1, 1)
            x = torch.round(x - medians) + medians  # exactly what decompress(compress(y)) returns
        likelihoods = _LowerBound.apply(self.bin_probability(x), self.likelihood_bound)
        return x.reshape(shape).movedim(0, 1), likelihoods.reshape(shape).movedim(0, 1)

    @torch.no_grad()
    def quantiles(self) -> torch.Tensor:
        """(C, 3): per channel the values below which tail_mass / 2, 1/2, 1 - tail_mass / 2 lie."""
        if not all(bool(torch.isfinite(p).all()) for p in self.parameters()):
            raise ValueError("the prior has non-finite parameters")
        tail = math.log(2 / self.tail_mass - 1)  # logit(1 - tail_mass / 2)
        target = torch.tensor([-tail, 0.0, tail]).view(1, 1, 3)
        lo = torch.full((self.channels, 1, 3), -1.0)
        hi = torch.full((self.channels, 1, 3), 1.0)
        for _ in range(64):  # widen each bracket until it holds its quantile
            too_high, too_low = self.logits_cdf(lo) > target, self.logits_cdf(hi) < target
            if not (too_high.any() or too_low.any()):
                break
            lo, hi = torch.where(too_high, lo * 2, lo), torch.where(too_low, hi * 2, hi)
        else:
            raise ValueError("the prior's cdf does not reach its tail targets")
        for _ in range(_BISECTION_STEPS):
            mid = (lo + hi) / 2
            above = self.logits_cdf(mid) > target
            lo, hi = torch.where(above, lo, mid), torch.where(above, mid, hi)
        return ((lo + hi) / 2).squeeze(1)


def rate_bits(likelihoods: torch.Tensor) -> torch.Tensor:
    """The information of the whole batch in bits: sum of -log2 likelihood (divide by N per image)."""
    return -torch.log2(likelihoods).sum()


def fit_prior(prior: FactorizedPrior, samples: torch.Tensor, steps: int = 300, lr: float = 0.02,
              batch: int = 4096, seed: int = 0) -> list[float]:
    """Fit the prior alone to fixed latents (N, C) by minimising their noisy rate. For sanity checks,
    benchmarks, or to give a model trained without a rate term its tables. Returns bits per value."""
    gen = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(prior.parameters(), lr=lr)
    prior.train()
    history = []
    for _ in range(steps):
        idx = torch.randint(len(samples), (min(batch, len(samples)),), generator=gen)
        _, likelihoods = prior(samples[idx])
        loss = rate_bits(likelihoods) / likelihoods.numel()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        history.append(loss.item())
    return history


# ---- integer tables ------------------------------------------------------------------------------


@torch.no_grad()
def build_tables(prior: FactorizedPrior, precision: int = 16, max_support: int = MAX_SUPPORT
                 ) -> dict[str, torch.Tensor]:
    """The prior as integer coding tables, the same shapes for any weights (buffers in both halves):

    cdf (C, max_support + 2) int32: row c = cumulative frequencies of its support symbols and then
        its escape, cdf_length[c] entries from 0 to 2**precision, padded with 2**precision;
    cdf_length (C,) int32; offset (C,) int32: the value q of symbol 0, so the support is
        [offset, offset + cdf_length - 2); medians (C,) float32: the quantisation centres.
    """
    if not 1 <= max_support < 1 << precision:
        raise ValueError(f"max_support must be 1..{(1 << precision) - 1} at precision {precision}")
    q = prior.quantiles()  # (C, 3): lower tail, median, upper tail
    medians = q[:, 1]
    below = torch.ceil(medians - q[:, 0]).clamp_min(0).long().tolist()  # symbols below the median's
    above = torch.ceil(q[:, 2] - medians).clamp_min(0).long().tolist()
    spans = [_trim(b, a, max_support - 1) for b, a in zip(below, above, strict=True)]
    width = max(b + a + 1 for b, a in spans)
    start = torch.tensor([-b for b, _ in spans], dtype=torch.float32).view(-1, 1, 1)  # (C, 1, 1)
    q_values = start + torch.arange(width, dtype=torch.float32)  # (C, 1, W): support, then unused
    pmf = prior.bin_probability(q_values + medians.view(-1, 1, 1)).squeeze(1).double().tolist()  # (C, W)

    channels = prior.channels
    total = 1 << precision
    cdf = torch.full((channels, max_support + 2), total, dtype=torch.int32)
    lengths = torch.zeros(channels, dtype=torch.int32)
    for c, (b, a) in enumerate(spans):
        table = make_table(pmf[c][: b + a + 1], -b, precision)
        cdf[c, : len(table.cdf)] = torch.tensor(table.cdf, dtype=torch.int32)
        lengths[c] = len(table.cdf)
    offsets = torch.tensor([-b for b, _ in spans], dtype=torch.int32)
    return {"cdf": cdf, "cdf_length": lengths, "offset": offsets, "medians": medians.float().clone()}


def _trim(below: int, above: int, budget: int) -> tuple[int, int]:
    """Fit below + above <= budget, keeping a short side whole and splitting the rest evenly."""
    b = min(below, max(budget - above, budget // 2))
    return b, min(above, budget - b)
