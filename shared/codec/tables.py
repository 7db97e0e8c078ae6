"""Entropy-coded latents with integer tables both halves hold: compress/decompress, EntropyTables.

A code is the range coder's bytes for the values of one latent (N, C) or (N, C, *spatial), channel-major
(channel 0 at every position, then channel 1, ...; a channel's positions share its table), and nothing else:
no header, no length (the wire format frames it); at least one byte, on average half a byte above
the information. Channel c's value q = round(y - median) is coded with its table: symbol q - offset if
q is in the support, else the escape symbol and then an Elias-gamma code of its distance past the
support in raw bits (see shared.codec.rangecoder, which also says which damage the decoder detects).
The coding itself runs in shared.codec.batchcoder: one compiled pass per batch, the reference's bytes.

Quantisation follows CompressAI: q = round(y - median) per channel, dequantised as q + median; the
float32 medians travel with the tables and round(y - m) + m is the same IEEE arithmetic everywhere.
The tables are built from a learned prior at export (aelink.training.prior.build_tables); this module
only reads them, with integer arithmetic, so a code decodes the same in any process.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from shared.codec.batchcoder import BatchCoder
from shared.codec.rangecoder import CodeError, Table

MAX_SUPPORT = 512  # symbols per channel table; values beyond it are escaped (fixed: buffers' shapes)
TABLE_KEYS = ("cdf", "cdf_length", "offset", "medians")


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


def compress(latents: torch.Tensor, tables: Mapping[str, torch.Tensor]) -> list[bytes]:
    """(N, C, *spatial) float latents -> N codes, each standing alone; values are rounded around the
    medians and coded channel-major (a spatial channel's positions share its table)."""
    coder, medians = coder_tables(tables)
    if latents.dim() < 2 or latents.shape[1] != len(coder):
        raise ValueError(f"expected (N, {len(coder)}, ...) latents, got {tuple(latents.shape)}")
    return _compress(latents, BatchCoder(coder, math.prod(latents.shape[2:]), medians.numpy()))


def _compress(latents: torch.Tensor, coder: BatchCoder) -> list[bytes]:
    """q = round(y - median) in float32 (as FactorizedPrior.forward rounds), coded: the kernel does both,
    and reads the latents as (N, values) whatever their shape."""
    y = latents.detach()
    return coder.compress((y if y.dtype == torch.float32 else y.float()).cpu().numpy())  # no-ops cost too


def decompress(codes: Sequence[bytes], tables: Mapping[str, torch.Tensor],
               shape: int | Sequence[int]) -> torch.Tensor:
    """N codes -> (N, *shape) float32 dequantised latents, shape = C or (C, *spatial); CodeError names
    the first bad code."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    coder, medians = coder_tables(tables)
    if shape[0] != len(coder):
        raise ValueError(f"the tables are for {len(coder)} channels, not {shape[0]}")
    y, errors = _decompress(codes, BatchCoder(coder, math.prod(shape[1:]), medians.numpy()), shape)
    _raise_first(errors)
    return y


def _decompress(codes: Sequence[bytes], coder: BatchCoder, shape: tuple[int, ...]
                ) -> tuple[torch.Tensor, list[CodeError | None]]:
    """(latents (N, *shape), per code None or why it does not decode: its row is then junk)."""
    y, errors = coder.decompress(codes)  # q + median in float32, as FactorizedPrior.forward
    return torch.from_numpy(y).reshape(len(y), *shape), errors


def first_error(errors: Sequence[CodeError | None]) -> CodeError | None:
    """The first code's error of a `decompress_each`, as decompress raises it (naming the code)."""
    return next((CodeError(f"code {i}: {e}") for i, e in enumerate(errors) if e is not None), None)


def _raise_first(errors: Sequence[CodeError | None]) -> None:
    error = first_error(errors)
    if error is not None:
        raise error


@torch.no_grad()
def information_bits(latents: torch.Tensor, tables: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """(N, C, *spatial) latents -> (N,) bits each code carries under the integer tables: the prior's
    likelihoods as the coder uses them (escapes' raw bits included), without the coder's termination.
    The same sum as shared.codec.rangecoder.ideal_bits, vectorised."""
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
        self._coder: tuple[tuple, BatchCoder] | None = None

    def tables(self) -> dict[str, torch.Tensor]:
        return {k: getattr(self, k) for k in TABLE_KEYS}

    def coder(self) -> BatchCoder:
        """The buffers as the coder's packed tables and medians, converted once and kept while the
        buffers stay as they are: converting 784 tables takes ~16 ms of CPU, far more than coding a batch.
        Keyed on each buffer's identity and in-place version, so load_state_dict or load_tables
        (both copy into the buffers) make it convert again."""
        key = tuple((id(t), t._version) for t in self._buffers.values())  # cheaper than tables()
        if self._coder is None or self._coder[0] != key:
            coder, medians = coder_tables(self.tables())
            self._coder = (key, BatchCoder(coder, self.positions, medians.numpy()))
        return self._coder[1]

    def check(self) -> None:
        """Raise ValueError unless the buffers hold valid tables (all zeros until build_tables) that code
        and decode a latent; the first check in a process also compiles the coder (see batchcoder)."""
        zero = torch.zeros(1, self.channels, self.positions)
        quantised = torch.round(zero - _centred(self.medians, 3)) + _centred(self.medians, 3)
        if not torch.equal(self.decompress(self.compress(zero.view(1, *self.shape))).view_as(zero), quantised):
            raise ValueError("the coding tables do not decode what they code")

    def load_tables(self, tables: Mapping[str, torch.Tensor]) -> None:
        coder_tables(tables)  # refuse bad tables before touching ours
        for k in TABLE_KEYS:
            if tables[k].shape != getattr(self, k).shape:  # channels or max_support differ
                raise ValueError(f"tables {k} is {tuple(tables[k].shape)}, this module holds"
                                 f" {tuple(getattr(self, k).shape)}")
        for k in TABLE_KEYS:
            getattr(self, k).copy_(tables[k])

    def _view(self, latents: torch.Tensor, reshape: bool = True) -> torch.Tensor:
        """(N, *shape) -> (N, channels, positions), or unchanged but checked"""
        if tuple(latents.shape[1:]) != self.shape:
            raise ValueError(f"expected (N, {', '.join(map(str, self.shape))}) latents, got {tuple(latents.shape)}")
        return latents.reshape(len(latents), self.channels, self.positions) if reshape else latents

    def compress(self, latents: torch.Tensor) -> list[bytes]:
        """(N, *shape) latents -> N codes, one coding pass for the batch."""
        return _compress(self._view(latents, reshape=False), self.coder())

    def decompress(self, codes: Sequence[bytes]) -> torch.Tensor:
        """N codes -> (N, *shape) latents; CodeError names the first bad code."""
        y, errors = self.decompress_each(codes)
        _raise_first(errors)
        return y

    def decompress_each(self, codes: Sequence[bytes]) -> tuple[torch.Tensor, list[CodeError | None]]:
        """N codes -> ((N, *shape) latents, per code None or the CodeError it gets alone): one pass for
        a batch whose bad codes must not fail the others (their rows are junk)."""
        return _decompress(codes, self.coder(), self.shape)

    def information_bits(self, latents: torch.Tensor) -> torch.Tensor:
        return information_bits(self._view(latents), self.tables())
