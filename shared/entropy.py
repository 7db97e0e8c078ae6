"""Entropy coding of latents: a learned factorized prior, its integer tables, compress/decompress.

Both halves import this module (it imports neither of them):

- training: `FactorizedPrior` learns one density per latent channel (Ballé et al. 2018, "Variational
  image compression with a scale hyperprior", appendix 6.1; CompressAI's EntropyBottleneck). Its
  `forward` adds uniform noise while training and rounds at eval; loss = distortion + lambda *
  rate_bits(likelihoods) / N.
- export: `build_tables(prior)` turns the densities into integer tables (plain tensors); both halves
  hold them as the buffers of an `EntropyTables` module, so sender and receiver code with the same ints.
- serving: `compress` / `decompress` (or `EntropyTables.compress` / `.decompress`) use only those
  tables and integer arithmetic (shared.rangecoder), so a code decodes the same in any process.

A code is the range coder's bytes for the values of one latent (N, C) or (N, C, *spatial), channel-major
(channel 0 at every position, then channel 1, ...; a channel's positions share its table), and nothing else:
no header, no length (the wire format frames it); at least one byte, on average half a byte above
the information. Channel c's value q = round(y - median) is coded with its table: symbol q - offset if
q is in the support, else the escape symbol and then an Elias-gamma code of its distance past the
support in raw bits (see shared.rangecoder, which also says which damage the decoder detects).

Quantisation follows CompressAI: q = round(y - median) per channel, dequantised as q + median; the
float32 medians travel with the tables and round(y - m) + m is the same IEEE arithmetic everywhere.

Quantiles (medians and the tails that bound the tables' support) are not learned with CompressAI's
auxiliary loss: the learned cdf is monotone by construction (positive weights, tanh factors > -1),
so `quantiles()` finds them by bisection whenever they are needed. They are exact at any point of
training and need no second optimizer or extra loss term.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from shared.rangecoder import CodeError, Table, decode_values, encode_values, make_table

MAX_SUPPORT = 512  # symbols per channel table; values beyond it are escaped (fixed: buffers' shapes)
TABLE_KEYS = ("cdf", "cdf_length", "offset", "medians")
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

    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(y_tilde, likelihoods), both shaped like y: noisy y in training, quantised y at eval."""
        if y.dim() < 2 or y.shape[1] != self.channels:
            raise ValueError(f"expected (N, {self.channels}, ...) latents, got {tuple(y.shape)}")
        x = y.movedim(1, 0)  # (C, N, *spatial)
        shape = x.shape
        x = x.reshape(self.channels, 1, -1)  # (C, 1, M)
        if self.training:
            x = x + torch.empty_like(x).uniform_(-0.5, 0.5)
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


def coder_tables(tables: Mapping[str, torch.Tensor]) -> tuple[list[Table], torch.Tensor]:
    """Check the tensors and turn them into the coder's tables; returns (tables, medians (C,))."""
    missing = set(TABLE_KEYS) - set(tables)
    if missing:
        raise ValueError(f"coding tables lack {sorted(missing)}")
    cdf, lengths, offsets, medians = (tables[k] for k in TABLE_KEYS)
    channels = cdf.shape[0] if cdf.dim() == 2 else -1
    if (
        channels < 1 or any(t.dtype != torch.int32 for t in (cdf, lengths, offsets))
        or lengths.shape != (channels,) or offsets.shape != (channels,) or medians.shape != (channels,)
        or medians.dtype != torch.float32
    ):
        raise ValueError("coding tables must be int32 cdf (C, S), cdf_length (C,), offset (C,)"
                         " and float32 medians (C,)")
    if not bool(((lengths >= 3) & (lengths <= cdf.shape[1])).all()):
        raise ValueError("coding tables are empty or malformed: build them with build_tables(prior)")
    if not torch.isfinite(medians).all():
        raise ValueError("coding tables have non-finite medians")
    rows, lengths, offsets = cdf.tolist(), lengths.tolist(), offsets.tolist()
    out = []
    for row, n, offset in zip(rows, lengths, offsets, strict=True):
        bits = row[n - 1].bit_length() - 1
        out.append(Table(tuple(row[:n]), offset, bits).check())
    return out, medians


def _centred(medians: torch.Tensor, ndim: int) -> torch.Tensor:
    """Medians (C,) shaped to broadcast over latents of ndim dimensions (N, C, *spatial)."""
    return medians.view(1, -1, *[1] * (ndim - 2))


def _per_value(coder: list[Table], positions: int) -> list[Table]:
    """One table per coded value, channel-major: channel 0 at every position, then channel 1, ..."""
    return [table for table in coder for _ in range(positions)]


def compress(latents: torch.Tensor, tables: Mapping[str, torch.Tensor]) -> list[bytes]:
    """(N, C, *spatial) float latents -> N codes, each standing alone; values are rounded around the
    medians and coded channel-major (a spatial channel's positions share its table)."""
    return _compress(latents, *coder_tables(tables))


def _compress(latents: torch.Tensor, coder: list[Table], medians: torch.Tensor) -> list[bytes]:
    if latents.dim() < 2 or latents.shape[1] != len(coder):
        raise ValueError(f"expected (N, {len(coder)}, ...) latents, got {tuple(latents.shape)}")
    y = latents.detach().to(torch.float32).cpu()
    if not torch.isfinite(y).all():
        raise ValueError("latents must be finite")
    q = torch.round(y - _centred(medians, y.dim()))  # integers as float32, as in FactorizedPrior.forward
    if q.numel() and q.abs().max() > 2**31:
        raise ValueError("a latent is too large to code: |round(y - median)| must fit int32")
    order = _per_value(coder, math.prod(y.shape[2:]))
    return [encode_values(row, order) for row in q.flatten(1).to(torch.int64).tolist()]


def decompress(codes: Sequence[bytes], tables: Mapping[str, torch.Tensor],
               shape: int | Sequence[int]) -> torch.Tensor:
    """N codes -> (N, *shape) float32 dequantised latents, shape = C or (C, *spatial); CodeError names
    the first bad code."""
    return _decompress(codes, *coder_tables(tables), shape)


def _decompress(codes: Sequence[bytes], coder: list[Table], medians: torch.Tensor,
                shape: int | Sequence[int]) -> torch.Tensor:
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    if shape[0] != len(coder):
        raise ValueError(f"the tables are for {len(coder)} channels, not {shape[0]}")
    order = _per_value(coder, math.prod(shape[1:]))
    rows = []
    for i, code in enumerate(codes):
        if not isinstance(code, bytes | bytearray | memoryview):  # bytes(5) would be five zeros
            raise TypeError(f"code {i} is {type(code).__name__}, not bytes")
        try:
            rows.append(decode_values(code, order))
        except CodeError as e:
            raise CodeError(f"code {i}: {e}") from None
    q = torch.tensor(rows, dtype=torch.int64).reshape(len(rows), *shape)
    return q.to(torch.float32) + _centred(medians, len(shape) + 1)


@torch.no_grad()
def information_bits(latents: torch.Tensor, tables: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """(N, C, *spatial) latents -> (N,) bits each code carries under the integer tables: the prior's
    likelihoods as the coder uses them (escapes' raw bits included), without the coder's termination.
    The same sum as shared.rangecoder.ideal_bits, vectorised."""
    coder_tables(tables)  # the same checks as compress
    cdf, lengths, offsets, medians = (tables[k] for k in TABLE_KEYS)
    y = latents.detach().to(torch.float32).cpu()
    n, c = y.shape[:2]
    q = torch.round(y - _centred(medians, y.dim())).reshape(n, c, -1).to(torch.int64)  # (N, C, P)
    s = q - offsets.view(1, c, 1).to(torch.int64)
    escape = (lengths - 2).view(1, c, 1).to(torch.int64)  # the escape symbol's index, per channel
    inside = (s >= 0) & (s < escape)
    sym = torch.where(inside, s, escape)  # (N, C, P)
    rows = cdf.to(torch.int64).unsqueeze(0).expand(n, -1, -1)  # (N, C, S)
    freq = rows.gather(2, sym + 1) - rows.gather(2, sym)  # (N, C, P)
    total = rows.gather(2, (lengths - 1).view(1, c, 1).expand(n, -1, 1).to(torch.int64))  # (N, C, 1)
    bits = torch.log2(total.double()) - torch.log2(freq.double())
    e = torch.where(s < 0, 2 * (-1 - s), 2 * (s - escape) + 1)  # escaped distance, as encode_values
    gamma = 2 * torch.floor(torch.log2((e + 1).clamp_min(1).double())) + 1  # Elias gamma of e + 1
    return (bits + torch.where(inside, 0.0, gamma)).sum(dim=(1, 2))


class EntropyTables(nn.Module):
    """The tables as buffers (cdf, cdf_length, offset, medians): put one in each half's module, e.g.
    `self.entropy = EntropyTables(16, shape=(16, 7, 7))`, and fill both with the same build_tables().

    `channels` tables code latents of `shape` (default (channels,)), viewed channel-major as (channels,
    positions): 16 tables for (16, 7, 7) share each channel's table over its 49 positions; 784 tables
    for (16, 7, 7) give every value its own. The shape is no buffer: the model's config gives it."""

    def __init__(self, channels: int, max_support: int = MAX_SUPPORT, shape: Sequence[int] | None = None) -> None:
        super().__init__()
        self.channels = channels
        self.shape = tuple(shape or (channels,))  # one latent
        if math.prod(self.shape) % channels:
            raise ValueError(f"{channels} tables cannot share a latent of shape {self.shape} evenly")
        self.positions = math.prod(self.shape) // channels
        self.register_buffer("cdf", torch.zeros(channels, max_support + 2, dtype=torch.int32))
        self.register_buffer("cdf_length", torch.zeros(channels, dtype=torch.int32))
        self.register_buffer("offset", torch.zeros(channels, dtype=torch.int32))
        self.register_buffer("medians", torch.zeros(channels, dtype=torch.float32))
        self._coder: tuple[tuple, tuple[list[Table], torch.Tensor]] | None = None

    def tables(self) -> dict[str, torch.Tensor]:
        return {k: getattr(self, k) for k in TABLE_KEYS}

    def coder(self) -> tuple[list[Table], torch.Tensor]:
        """The buffers as the coder's tables and medians, converted once and kept while the buffers stay
        as they are: converting 784 tables takes ~5 ms, all of a one-image request's coding time.
        Keyed on each buffer's identity and in-place version, so load_state_dict or load_tables
        (both copy into the buffers) make it convert again."""
        key = tuple((id(t), t._version) for t in self.tables().values())
        if self._coder is None or self._coder[0] != key:
            self._coder = (key, coder_tables(self.tables()))
        return self._coder[1]

    def check(self) -> None:
        """Raise ValueError unless the buffers hold valid tables (all zeros until build_tables)."""
        self.coder()

    def load_tables(self, tables: Mapping[str, torch.Tensor]) -> None:
        coder_tables(tables)  # refuse bad tables before touching ours
        for k in TABLE_KEYS:
            if tables[k].shape != getattr(self, k).shape:  # channels or max_support differ
                raise ValueError(f"tables {k} is {tuple(tables[k].shape)}, this module holds"
                                 f" {tuple(getattr(self, k).shape)}")
        for k in TABLE_KEYS:
            getattr(self, k).copy_(tables[k])

    def _view(self, latents: torch.Tensor) -> torch.Tensor:
        """(N, *shape) -> (N, channels, positions)"""
        if tuple(latents.shape[1:]) != self.shape:
            raise ValueError(f"expected (N, {', '.join(map(str, self.shape))}) latents, got {tuple(latents.shape)}")
        return latents.reshape(len(latents), self.channels, self.positions)

    def compress(self, latents: torch.Tensor) -> list[bytes]:
        return _compress(self._view(latents), *self.coder())

    def decompress(self, codes: Sequence[bytes]) -> torch.Tensor:
        y = _decompress(codes, *self.coder(), (self.channels, self.positions))
        return y.reshape(len(y), *self.shape)

    def information_bits(self, latents: torch.Tensor) -> torch.Tensor:
        return information_bits(self._view(latents), self.tables())


# ---- benchmark -----------------------------------------------------------------------------------


def synthetic_latents(n: int, channels: int, seed: int = 0) -> torch.Tensor:
    """(n, C) Laplace latents, per channel a spread of 0.3..8 steps and a centre off the grid; the
    channels' spreads and centres are fixed, the seed draws the samples."""
    params = torch.Generator().manual_seed(12345)
    scale = torch.exp(torch.empty(channels).uniform_(math.log(0.3), math.log(8), generator=params))
    centre = torch.empty(channels).uniform_(-3, 3, generator=params)
    u = torch.rand(n, channels, generator=torch.Generator().manual_seed(seed)).clamp(1e-7, 1 - 1e-7)
    return centre - scale * torch.sign(u - 0.5) * torch.log1p(-2 * (u - 0.5).abs())  # inverse cdf


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m shared.entropy",
                                description="Fit a prior to synthetic latents; measure its codes.")
    p.add_argument("--codes", type=int, default=10_000)
    p.add_argument("--channels", type=int, default=32)
    p.add_argument("--steps", type=int, default=300)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    prior = FactorizedPrior(args.channels)
    t0 = time.perf_counter()
    fit_prior(prior, synthetic_latents(20_000, args.channels, seed=1), steps=args.steps)
    t1 = time.perf_counter()
    tables = build_tables(prior.eval())
    t2 = time.perf_counter()
    y = synthetic_latents(args.codes, args.channels, seed=2)
    codes = compress(y, tables)
    t3 = time.perf_counter()
    y_hat = decompress(codes, tables, args.channels)
    t4 = time.perf_counter()
    y_tilde, likelihoods = prior(y)
    assert torch.equal(y_hat, y_tilde), "decompress disagrees with the prior's quantisation"
    estimate = rate_bits(likelihoods).item() / 8 / len(codes)
    real = sum(map(len, codes)) / len(codes)
    print(f"fit {args.steps} steps: {t1 - t0:.1f} s; tables: {t2 - t1:.2f} s,"
          f" {int(tables['cdf_length'].max()) - 2} symbols max")
    print(f"bytes per code: {real:.3f} real, {estimate:.3f} estimated by the prior ({real - estimate:+.3f})")
    print(f"compress {t3 - t2:.2f} s, decompress {t4 - t3:.2f} s for {len(codes)} codes of {args.channels}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
