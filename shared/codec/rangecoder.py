"""A byte-oriented range coder over integer frequency tables: pure Python, no torch, no floats.

The coder (after Subbotin and LZMA's rc) keeps a 32-bit `range` and narrows it by `range >> bits`
per symbol, shifting out a byte whenever range drops below 2**24. The encoder's `low` is an unbounded
Python int, so a carry reaches earlier bytes by plain addition (a C port would use LZMA's cache byte).

Termination costs at most one byte: the encoder ends with the byte the decoder needs last, and the
decoder reads exactly PADDING (3) zero bytes past the end of the data, no more and no fewer. A code
is thus within a byte of its information (measured: never more than ceil(information / 8) + 1 bytes)
and *canonical*: every accepted byte string is exactly what the encoder writes for the symbols it
decodes to. The decoder checks this (`RangeDecoder.finish`, `_renormalise`), which catches nearly all
truncated or extended codes and about nine corruptions in ten; the rest decode to other symbols, as
they must with no redundancy to spare (measured rates: `python -m aelink.measure.coder_bench`).

On top of the coder, `encode_values`/`decode_values` code one integer per table: a table covers a
support [offset, offset + L) plus a last *escape* symbol; a value outside the support is sent as the
escape followed by an Elias-gamma code in raw (bypass) bits, so any int32 value is codable.

This module is the format's reference, kept for reading and for tests; the services code with its
compiled twin, shared.codec.batchcoder, which writes the same bytes and refuses the same codes with
the same messages (MESSAGES, below), a whole batch per call and many times faster.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from typing import NamedTuple

MAX_PRECISION = 16  # table totals up to 2**16: range >> 16 keeps at least 8 bits of resolution
VALUE_MIN, VALUE_MAX = -(2**31), 2**31 - 1  # the values `encode_values` accepts (int32)
_TOP = 1 << 32
_BOTTOM = 1 << 24  # renormalise (shift out a byte) when range falls below this
PADDING = 3  # zero bytes the decoder reads past the end of every valid code, no more, no fewer
_MAX_GAMMA_ZEROS = 40  # an int32 escape needs at most 34; more zeros can only come from a bad code


class CodeError(ValueError):
    """A code cannot be decoded: truncated, corrupt, or not made with these tables."""


# Why a decoder refuses a code, by kind (shared.codec.batchcoder reports the same kinds); {} is a detail.
EMPTY, TRUNCATED, OUTSIDE, LEFT_OVER, BAD_END, LONG_GAMMA, NOT_INT32 = range(1, 8)
MESSAGES = {
    EMPTY: "empty code: every code has at least one byte",
    TRUNCATED: "truncated or corrupt code: its symbols run past its end",
    OUTSIDE: "corrupt code: it points outside the coding interval",
    LEFT_OVER: "corrupt code: {} byte(s) left over",
    BAD_END: "corrupt code: it does not end the way the encoder ends a code",
    LONG_GAMMA: "corrupt code: an escaped value longer than any int32",
    NOT_INT32: "corrupt code: escaped value {} is outside int32",
}


class RangeEncoder:
    __slots__ = ("_low", "_range", "_shifts")

    def __init__(self) -> None:
        self._low = 0  # the interval is [low, low + range) / 2**(32 + 8 * shifts)
        self._range = _TOP
        self._shifts = 0

    def encode(self, start: int, size: int, bits: int) -> None:
        """Narrow the interval to [start, start + size) out of a total of 2**bits (size >= 1)."""
        r = self._range >> bits
        self._low += r * start
        rng = r * size
        while rng < _BOTTOM:
            rng <<= 8
            self._low <<= 8
            self._shifts += 1
        self._range = rng

    def encode_bits(self, value: int, nbits: int) -> None:
        """`nbits` raw bits of value, most significant first, each costing exactly one bit."""
        while nbits > 0:
            n = min(nbits, MAX_PRECISION)
            nbits -= n
            self.encode((value >> nbits) & ((1 << n) - 1), 1, n)

    def finish(self) -> bytes:
        """The bytes shifted out plus one: the smallest such value in the final interval.

        range >= 2**24 ensures that one byte always suffices, and the decoder then reads exactly
        PADDING zero bytes past the end. A shorter ending exists in about one code in six (its last
        byte is 0 and could go), but keeping it costs 0.18 B on average and buys truncation
        detection: without it, a code missing its last byte looks like one that dropped a 0.
        """
        v = -(-self._low // _BOTTOM)  # ceil(low / 2**24): low <= v * 2**24 < low + range
        return v.to_bytes(self._shifts + 1, "big")


class RangeDecoder:
    __slots__ = ("_data", "_pos", "_code", "_range")

    def __init__(self, data: bytes) -> None:
        self._data = bytes(data)
        if not self._data:
            raise CodeError(MESSAGES[EMPTY])
        self._pos = 4  # bytes read so far, counting the zeros read past the end
        self._code = int.from_bytes(self._data[:4].ljust(4, b"\0"), "big")  # value - low, < range
        self._range = _TOP

    def _renormalise(self, rng: int) -> None:
        data, pos, code = self._data, self._pos, self._code
        while rng < _BOTTOM:
            if pos >= len(data) + PADDING:  # a valid code ends before the decoder needs this byte
                raise CodeError(MESSAGES[TRUNCATED])
            code = (code << 8) | (data[pos] if pos < len(data) else 0)
            pos += 1
            rng <<= 8
        self._pos, self._code, self._range = pos, code, rng

    def decode(self, cdf: Sequence[int], bits: int) -> int:
        """The symbol s with cdf[s] <= value < cdf[s + 1], where cdf[-1] == 2**bits."""
        r = self._range >> bits
        v = self._code // r
        if v >= cdf[-1]:  # the encoder never points into the unused top of the range
            raise CodeError(MESSAGES[OUTSIDE])
        s = bisect_right(cdf, v) - 1
        start = cdf[s]
        self._code -= r * start
        self._renormalise(r * (cdf[s + 1] - start))
        return s

    def decode_bits(self, nbits: int) -> int:
        value = 0
        while nbits > 0:
            n = min(nbits, MAX_PRECISION)
            nbits -= n
            r = self._range >> n
            v = self._code // r
            if v >> n:
                raise CodeError(MESSAGES[OUTSIDE])
            self._code -= r * v
            self._renormalise(r)
            value = (value << n) | v
        return value

    def finish(self) -> None:
        """Raise CodeError unless the data is exactly what RangeEncoder.finish wrote for the symbols
        decoded: every byte read, the last one being the final one the decoder needed (it then read
        exactly PADDING zeros past the end), and value - low < 2**24 (the smallest such ending)."""
        if self._pos < len(self._data) + PADDING:
            raise CodeError(MESSAGES[LEFT_OVER].format(len(self._data) + PADDING - self._pos))
        if self._code >= _BOTTOM:
            raise CodeError(MESSAGES[BAD_END])


# ---- tables and values -------------------------------------------------------------------------


class Table(NamedTuple):
    """One value's model: cdf has L + 2 entries for L support symbols and the escape (the last)."""

    cdf: tuple[int, ...]  # 0 = cdf[0] < cdf[1] < ... < cdf[L + 1] = 2**bits
    offset: int  # the value of symbol 0: the support is [offset, offset + L)
    bits: int  # the precision: frequencies sum to 2**bits

    def check(self) -> Table:
        cdf = self.cdf
        if not 1 <= self.bits <= MAX_PRECISION:
            raise ValueError(f"precision must be 1..{MAX_PRECISION} bits, not {self.bits}")
        if len(cdf) < 3 or cdf[0] != 0 or cdf[-1] != 1 << self.bits:
            raise ValueError(f"a cdf must run from 0 to 2**{self.bits} over at least 3 entries")
        if any(b <= a for a, b in zip(cdf, cdf[1:], strict=False)):
            raise ValueError("every symbol needs a frequency >= 1 (the cdf must increase strictly)")
        if not VALUE_MIN <= self.offset <= VALUE_MAX - (len(cdf) - 2):
            raise ValueError(f"support [{self.offset}, +{len(cdf) - 2}) is outside int32")
        return self


def quantize_pmf(pmf: Sequence[float], bits: int) -> list[int]:
    """Integer frequencies >= 1 summing to exactly 2**bits, close to pmf (need not sum to 1).

    Each symbol gets 1 + floor(p * (total - n)); the counts still missing go, one each, to the
    symbols with the largest remainders (Hamilton's method). Only ever run at export time.
    """
    n, total = len(pmf), 1 << bits
    mass = math.fsum(pmf)
    if not 0 < n <= total or not mass > 0 or any(not p >= 0 for p in pmf):
        raise ValueError(f"need 1..{total} non-negative probabilities with a positive sum")
    scaled = [p / mass * (total - n) for p in pmf]
    freq = [1 + math.floor(s) for s in scaled]
    by_remainder = sorted(range(n), key=lambda i: (math.floor(scaled[i]) - scaled[i], i))
    for i in range(total - sum(freq)):
        freq[by_remainder[i % n]] += 1
    return freq


def make_table(pmf: Sequence[float], offset: int, bits: int = MAX_PRECISION) -> Table:
    """A table for support [offset, offset + len(pmf)); the escape gets the mass pmf leaves of 1."""
    escape = max(0.0, 1.0 - math.fsum(pmf))
    freq = quantize_pmf([*pmf, escape], bits)
    cdf = [0]
    for f in freq:
        cdf.append(cdf[-1] + f)
    return Table(tuple(cdf), offset, bits).check()


def encode_values(values: Sequence[int], tables: Sequence[Table]) -> bytes:
    """One int per table, coded in order; the code stands alone (its length is not stored)."""
    if len(values) != len(tables):
        raise ValueError(f"{len(values)} values for {len(tables)} tables")
    enc = RangeEncoder()
    for value, (cdf, offset, bits) in zip(values, tables, strict=True):
        s = value - offset
        escape = len(cdf) - 2
        if 0 <= s < escape:
            enc.encode(cdf[s], cdf[s + 1] - cdf[s], bits)
        else:
            if not VALUE_MIN <= value <= VALUE_MAX:
                raise ValueError(f"value {value} is outside int32 and cannot be coded")
            enc.encode(cdf[escape], cdf[escape + 1] - cdf[escape], bits)
            _encode_gamma(enc, escape_distance(s, escape) + 1)
    return enc.finish()


def decode_values(data: bytes, tables: Sequence[Table]) -> list[int]:
    """The inverse of encode_values; raises CodeError on a code these tables did not make."""
    dec = RangeDecoder(data)
    values = []
    for cdf, offset, bits in tables:
        s = dec.decode(cdf, bits)
        escape = len(cdf) - 2
        if s < escape:
            values.append(offset + s)
            continue
        e = _decode_gamma(dec) - 1
        value = offset - 1 - e // 2 if e % 2 == 0 else offset + escape + e // 2
        if not VALUE_MIN <= value <= VALUE_MAX:
            raise CodeError(MESSAGES[NOT_INT32].format(value))
        values.append(value)
    dec.finish()
    return values


def escape_distance(s: int, escape: int) -> int:
    """How far symbol s (value - offset) lies outside the support [0, escape), interleaved by side:
    below -> 0, 2, 4...; above -> 1, 3, 5... (decode_values inverts it)."""
    return 2 * (-1 - s) if s < 0 else 2 * (s - escape) + 1


def _encode_gamma(enc: RangeEncoder, n: int) -> None:
    """Elias gamma for n >= 1: as many 0 bits as n has bits after its leading 1, then n itself.

    Coding k bits as one symbol of 2**k and as k symbols of 2 narrow the range differently (each
    truncates range >> bits), so the two sides must split the bits the same way."""
    width = n.bit_length() - 1
    for _ in range(width):  # one bit at a time, exactly as _decode_gamma reads them
        enc.encode(0, 1, 1)
    enc.encode(1, 1, 1)
    enc.encode_bits(n, width)  # the bits after the leading 1


def _decode_gamma(dec: RangeDecoder) -> int:
    width = 0
    while dec.decode_bits(1) == 0:  # zeros past the end of data would go on forever: bound them
        width += 1
        if width > _MAX_GAMMA_ZEROS:
            raise CodeError(MESSAGES[LONG_GAMMA])
    return (1 << width) | dec.decode_bits(width)
