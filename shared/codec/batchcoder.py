"""The range coder of shared.codec.rangecoder compiled with numba: a whole batch per call, the same bytes.

The kernels are the reference in fixed-width integers: the encoder keeps a 32-bit window of `low` and
writes each byte as it leaves it, so a carry adds one to bytes already written (never past the code's
first). Codes are the reference's bytes and refusals its CodeErrors (tests/codec check both), so `rc`
codes, sizes and damage detection are unchanged. Value i of a code uses table i // positions (channel-
major, as shared.codec.tables lays latents out). The kernels release the GIL and compile on first use
(seconds), cached on disk where numba may write. Measured: `python -m aelink.measure.coder_bench --models`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
from numba.extending import register_jitable

from shared.codec import rangecoder as rc

_TOP, _BOTTOM, _SLOTS = 1 << 32, 1 << 24, 256  # the decoder bisects from a slot: v >> (bits - 8)
_HEAD, _MAX_GAMMA_ZEROS = 3 + _SLOTS + 1, 40  # a packed row's columns before its cdf; as the reference
OK, _NOT_FINITE, _TOO_LARGE = 0, 8, 9  # status kinds besides rangecoder.MESSAGES'
_REFUSALS = {_NOT_FINITE: "latents must be finite",  # compress's, as shared.codec.tables words them
             _TOO_LARGE: "a latent is too large to code: |round(y - median)| must fit int32",
             rc.NOT_INT32: f"value {2**31} is outside int32 and cannot be coded"}  # |q| <= 2**31 passed


# ---- kernels: plain Python functions until _kernels compiles them ---------------------------------


@register_jitable
def _carry(out, start, pos):
    i = pos - 1  # add one to out[start:pos] read as one big-endian number
    while i >= start and out[i] == 255:
        out[i] = 0
        i -= 1
    if i >= start:
        out[i] += 1


@register_jitable
def _narrow(out, start, pos, low, rng, lo, size, bits):
    """RangeEncoder.encode: (pos, low, rng) after narrowing to [lo, lo + size) of 2**bits."""
    r = rng >> bits
    low += r * lo
    if low >= _TOP:
        low -= _TOP
        _carry(out, start, pos)
    rng = r * size
    while rng < _BOTTOM:
        out[pos] = low >> 24
        pos += 1
        low = (low & 0xFFFFFF) << 8
        rng <<= 8
    return pos, low, rng


@register_jitable
def _encode_rows(q, tab, positions, out, ends):
    """encode_values for each row of q (N, M) int64, the codes back to back in out, code k ending at
    ends[k]. Returns -1, or the first code that cannot be coded (a value outside int32)."""
    pos = 0
    for k in range(q.shape[0]):
        start, low, rng = pos, 0, _TOP
        if len(out) - pos < 11 * q.shape[1] + 8:  # never: BatchCoder._buffers allows that much a code
            return k
        for i in range(q.shape[1]):
            t = i if positions == 1 else i // positions  # no division in the common case
            n, offset, bits = tab[t, 0], tab[t, 1], tab[t, 2]
            value, escape = q[k, i], n - 2
            s = value - offset
            if not 0 <= s < escape:
                if value < rc.VALUE_MIN or value > rc.VALUE_MAX:
                    return k
                s = escape
            lo = tab[t, _HEAD + s]
            pos, low, rng = _narrow(out, start, pos, low, rng, lo, tab[t, _HEAD + s + 1] - lo, bits)
            if s < escape:
                continue
            s = value - offset  # escaped: Elias gamma of escape_distance + 1, one bit per symbol
            g = (2 * (-1 - s) if s < 0 else 2 * (s - escape) + 1) + 1
            width = 0
            while g >> (width + 1):
                width += 1
            for _ in range(width):
                pos, low, rng = _narrow(out, start, pos, low, rng, 0, 1, 1)
            pos, low, rng = _narrow(out, start, pos, low, rng, 1, 1, 1)
            while width > 0:  # then its bits after the leading 1, up to 16 a symbol (encode_bits)
                c = min(width, 16)
                width -= c
                pos, low, rng = _narrow(out, start, pos, low, rng, (g >> width) & ((1 << c) - 1), 1, c)
        last = (low + _BOTTOM - 1) >> 24  # RangeEncoder.finish: ceil(low / 2**24)
        if last > 255:
            last -= 256
            _carry(out, start, pos)
        out[pos] = last
        ends[k] = pos = pos + 1
    return -1


def _compress_kernel(y, medians, tab, positions, out, ends, status):
    """float32 y (N, M) -> codes of q = round(y - median) in float32, half to even (torch.round)."""
    q = np.empty(y.shape, dtype=np.int64)
    for k in range(y.shape[0]):
        for i in range(y.shape[1]):
            v = np.rint(y[k, i] - medians[i if positions == 1 else i // positions])
            if not np.isfinite(v) or abs(v) > 2.0**31:
                status[0] = _NOT_FINITE if not np.isfinite(y[k, i]) else _TOO_LARGE
                return
            q[k, i] = np.int64(v)
    status[0] = OK if _encode_rows(q, tab, positions, out, ends) < 0 else rc.NOT_INT32


@register_jitable
def _fill(data, end, pos, code, rng):
    """RangeDecoder._renormalise; pos -1 when the code would run past its end and rc.PADDING zeros."""
    while rng < _BOTTOM:
        if pos >= end + rc.PADDING:
            return -1, code, rng
        code = (code << 8) | (data[pos] if pos < end else 0)
        pos += 1
        rng <<= 8
    return pos, code, rng


@register_jitable
def _raw_bits(data, end, pos, code, rng, nbits):
    """RangeDecoder.decode_bits: (status, value, pos, code, rng)."""
    value = 0
    while nbits > 0:
        c = min(nbits, 16)
        nbits -= c
        r = rng >> c
        v = code // r
        if v >> c:
            return rc.OUTSIDE, 0, pos, code, rng
        code -= r * v
        pos, code, rng = _fill(data, end, pos, code, r)
        if pos < 0:
            return rc.TRUNCATED, 0, pos, code, rng
        value = (value << c) | v
    return OK, value, pos, code, rng


@register_jitable
def _decode_one(data, start, end, tab, positions, q, k):
    """decode_values(data[start:end]) into q[k]: (status, detail), failing where the reference does."""
    if end <= start:
        return rc.EMPTY, 0
    code, pos, rng = 0, start + 4, _TOP
    for j in range(start, pos):
        code = (code << 8) | (data[j] if j < end else 0)
    for i in range(q.shape[1]):
        t = i if positions == 1 else i // positions  # no division in the common case
        n, offset, bits = tab[t, 0], tab[t, 1], tab[t, 2]
        r = rng >> bits
        v = np.int64(np.uint64(code) // np.uint64(r))  # unsigned: no floor-division sign fix-ups
        if v >= 1 << bits:  # the encoder never points into the unused top of the range
            return rc.OUTSIDE, 0
        slot = v >> max(bits - 8, 0)  # cdf[first[slot]] <= v < cdf[first[slot + 1] + 1]: bisect between
        s, hi = tab[t, 3 + slot], min(tab[t, 4 + slot] + 1, n - 1)
        while hi - s > 1:
            mid = (s + hi) >> 1
            if tab[t, _HEAD + mid] <= v:
                s = mid
            else:
                hi = mid
        lo = tab[t, _HEAD + s]
        code -= r * lo
        pos, code, rng = _fill(data, end, pos, code, r * (tab[t, _HEAD + s + 1] - lo))
        if pos < 0:
            return rc.TRUNCATED, 0
        escape = n - 2
        if s < escape:
            q[k, i] = offset + s
            continue
        width, err, bit = -1, OK, 0
        while err == OK and bit == 0:  # Elias gamma: zeros, a one, then as many bits
            width += 1
            if width > _MAX_GAMMA_ZEROS:
                return rc.LONG_GAMMA, 0
            err, bit, pos, code, rng = _raw_bits(data, end, pos, code, rng, 1)
        if err == OK:
            err, tail, pos, code, rng = _raw_bits(data, end, pos, code, rng, width)
        if err != OK:
            return err, 0
        e = ((1 << width) | tail) - 1
        value = offset - 1 - e // 2 if e % 2 == 0 else offset + escape + e // 2
        if value < rc.VALUE_MIN or value > rc.VALUE_MAX:
            return rc.NOT_INT32, value
        q[k, i] = value
    if pos < end + rc.PADDING:
        return rc.LEFT_OVER, end + rc.PADDING - pos
    return (rc.BAD_END, 0) if code >= _BOTTOM else (OK, 0)


@register_jitable
def _decode_rows(data, lengths, tab, positions, q, status):
    start = 0
    for k in range(len(lengths)):
        status[k, 0], status[k, 1] = _decode_one(data, start, start + lengths[k], tab, positions, q, k)
        start += lengths[k]


def _decompress_kernel(data, lengths, tab, medians, positions, y, status):
    """Decode, then y = float32(q) + median: torch's int64 -> float32 cast, then a float32 sum."""
    q = np.zeros(y.shape, dtype=np.int64)
    _decode_rows(data, lengths, tab, positions, q, status)
    for k in range(y.shape[0]):
        for i in range(y.shape[1]):
            y[k, i] = np.float32(q[k, i]) + medians[i if positions == 1 else i // positions]


@functools.cache
def _kernels() -> dict:
    """Compile on first call; cache on disk where numba can write (else compile in each process)."""
    import numba

    def jit(fn):
        try:
            return numba.njit(cache=True, nogil=True)(fn)
        except RuntimeError:  # numba found no writable cache directory
            return numba.njit(nogil=True)(fn)

    return {"encode": jit(_encode_rows), "compress": jit(_compress_kernel), "decode": jit(_decode_rows),
            "decompress": jit(_decompress_kernel)}


class BatchCoder:
    """Tables packed once; codes whole batches: a code per row, each standing alone."""

    def __init__(self, tables: Sequence[rc.Table], positions: int = 1, medians: np.ndarray | None = None):
        # a row per table: [cdf length n, offset, bits, first symbol of each slot, cdf]; int32 for the cache
        self.tab = np.zeros((len(tables), _HEAD + max((len(t.cdf) for t in tables), default=0)), np.int32)
        for row, (cdf, offset, bits) in zip(self.tab, tables, strict=True):
            slots = np.arange(_SLOTS + 1, dtype=np.int64) << max(bits - 8, 0)  # the last symbol at or below
            row[:_HEAD] = len(cdf), offset, bits, *np.minimum(np.searchsorted(cdf, slots, "right") - 1, len(cdf) - 1)
            row[_HEAD:_HEAD + len(cdf)] = cdf
        self.positions, self.values = positions, len(tables) * positions  # values per code
        self.medians = None if medians is None else np.ascontiguousarray(medians, dtype=np.float32)

    def _buffers(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        # room for n codes: a value takes 16 bits of symbol and at most 67 of Elias gamma (an int32 value
        # past an int32 support), so a code of m values takes 11 m + 8 bytes at most; and their ends
        return np.empty(n * (11 * self.values + 8), np.uint8), np.zeros(n, np.int64)

    def encode(self, values: np.ndarray) -> list[bytes]:
        """Integers (N, M) -> N codes: [encode_values(row, tables per value) for row in values]."""
        q = np.ascontiguousarray(values, dtype=np.int64).reshape(len(values), self.values)
        (out, ends), outside = self._buffers(len(q)), q[(q < rc.VALUE_MIN) | (q > rc.VALUE_MAX)]
        if len(outside):  # the first in row order, as encode_values would meet it
            raise ValueError(f"value {int(outside[0])} is outside int32 and cannot be coded")
        _kernels()["encode"](q, self.tab, self.positions, out, ends)
        return _split(out, ends)

    def compress(self, y: np.ndarray) -> list[bytes]:
        """float32 latents (N, M) -> N codes of round(y - median), as shared.codec.tables quantises."""
        y = np.ascontiguousarray(y, dtype=np.float32).reshape(len(y), self.values)
        (out, ends), status = self._buffers(len(y)), np.zeros(1, dtype=np.int64)
        _kernels()["compress"](y, self.medians, self.tab, self.positions, out, ends, status)
        if status[0] != OK:
            raise ValueError(_REFUSALS[int(status[0])])
        return _split(out, ends)

    def decode(self, codes: Sequence[bytes]) -> tuple[np.ndarray, list[rc.CodeError | None]]:
        """N codes -> (int64 values (N, M), per code None or its CodeError; a bad code's row is junk)."""
        return self._decode("decode", codes, np.zeros((len(codes), self.values), np.int64))

    def decompress(self, codes: Sequence[bytes]) -> tuple[np.ndarray, list[rc.CodeError | None]]:
        """N codes -> (float32 latents (N, M) = q + median, per code None or its CodeError)."""
        return self._decode("decompress", codes, np.empty((len(codes), self.values), np.float32), self.medians)

    def _decode(self, kernel: str, codes: Sequence[bytes], out: np.ndarray, *medians: np.ndarray):
        (data, lengths), status = _joined(codes), np.zeros((len(codes), 2), np.int64)
        _kernels()[kernel](data, lengths, self.tab, *medians, self.positions, out, status)
        return out, _errors(status)


def _split(out: np.ndarray, ends: np.ndarray) -> list[bytes]:
    bounds = ends.tolist()
    buf = out[: bounds[-1]].tobytes() if bounds else b""
    return [buf[a:b] for a, b in zip([0, *bounds], bounds, strict=False)]  # (start, end) of each


def _joined(codes: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
    if not {bytes} >= set(map(type, codes)):  # the common case, at once; bytes(5) would be five zeros
        for i, code in enumerate(codes):
            if not isinstance(code, bytes | bytearray | memoryview):
                raise TypeError(f"code {i} is {type(code).__name__}, not bytes")
    lengths = np.fromiter(map(len, codes), dtype=np.int64, count=len(codes))
    return np.frombuffer(b"".join(codes), dtype=np.uint8), lengths


def _errors(status: np.ndarray) -> list[rc.CodeError | None]:
    if not status[:, 0].any():
        return [None] * len(status)
    return [None if kind == OK else rc.CodeError(rc.MESSAGES[kind].format(detail))
            for kind, detail in status.tolist()]
