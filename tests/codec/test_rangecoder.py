"""The range coder: exact round trips, exact tables, canonical codes, overhead, damage detection."""

import math
import random
import re

import pytest

from aelink.measure.coder_bench import detection_rates, ideal_bits, realistic_tables, sample_values
from shared.codec.rangecoder import (
    VALUE_MAX,
    VALUE_MIN,
    CodeError,
    RangeEncoder,
    Table,
    decode_values,
    encode_values,
    make_table,
    quantize_pmf,
)


def random_table(rng: random.Random) -> Table:
    bits = rng.choice([1, 2, 8, 12, 15, 16, 16, 16])
    size = rng.randint(1, min(300, (1 << bits) - 1))  # support symbols; the escape needs one more
    pmf = [rng.random() ** 4 * rng.choice([0, 1, 1, 1]) for _ in range(size)]
    pmf[rng.randrange(size)] += 1e-3  # never all zero
    return make_table(pmf, rng.randint(-1000, 1000), bits)


def random_value(rng: random.Random, table: Table) -> int:
    kind = rng.random()
    if kind < 0.8:
        return sample_values(rng, table)
    if kind < 0.95:  # just past either tail
        return rng.choice([table.offset - rng.randint(1, 40), table.offset + len(table.cdf) - 2 + rng.randint(0, 40)])
    return rng.randint(VALUE_MIN, VALUE_MAX)


def skewed_table(bits: int = 16) -> Table:
    """Symbol 0 takes all but one count: it costs about 2**-bits / ln 2 bits."""
    return Table((0, (1 << bits) - 1, 1 << bits), 5, bits)


@pytest.mark.parametrize("seed", range(30))
def test_round_trip_random_tables(seed):
    rng = random.Random(seed)
    tables = [random_table(rng) for _ in range(rng.randint(1, 64))]
    for _ in range(20):
        values = [random_value(rng, t) for t in tables]
        code = encode_values(values, tables)
        assert decode_values(code, tables) == values


@pytest.mark.parametrize(
    "tables, values",
    [
        pytest.param([], [], id="empty message"),
        pytest.param([skewed_table()] * 64, [5] * 64, id="probability-1-ish symbols"),
        pytest.param([skewed_table()] * 64, [6] * 64, id="probability-2**-16 symbols"),
        pytest.param([Table((0, 1, 2), 0, 1)] * 40, [0, 1, -1, 2] * 10, id="single-symbol support, 1 bit"),
        pytest.param([Table((0, 1, 2), 0, 1)] * 4, [VALUE_MIN, VALUE_MAX, VALUE_MIN + 1, VALUE_MAX - 1],
                     id="int32 extremes"),
        pytest.param([make_table([0.5, 0.5], 0)] * 32, list(range(-16, 16)), id="mostly escapes"),
        pytest.param([make_table([1.0] * 1000, -500, 10)] * 3, [-500, 499, 0], id="support of 2**bits - 24"),
        pytest.param([skewed_table(1), skewed_table(16), Table((0, 1, 3, 4), -3, 2)], [5, 5, -2],
                     id="mixed precisions"),
    ],
)
def test_round_trip_edge_cases(tables, values):
    code = encode_values(values, tables)
    assert decode_values(code, tables) == values
    assert len(code) >= 1  # the terminating byte is always there, even for no values


def test_empty_message_is_one_byte():
    assert encode_values([], []) == b"\x00"
    assert decode_values(b"\x00", []) == []


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("bits", [1, 4, 12, 16])
def test_quantize_pmf_exact(seed, bits):
    rng = random.Random(seed)
    n = rng.choice([1, 2, (1 << bits) // 2 or 1, 1 << bits])
    pmf = [rng.random() ** 8 * rng.choice([0, 1]) for _ in range(n)]
    pmf[0] += 1e-12
    freq = quantize_pmf(pmf, bits)
    assert sum(freq) == 1 << bits and min(freq) >= 1 and len(freq) == n


@pytest.mark.parametrize("pmf", [[0.5, 0.25, 0.125, 0.125], [0.9] + [0.1 / 99] * 99, [1e-9, 1.0, 1e-9]])
def test_quantize_pmf_is_close(pmf):
    freq = quantize_pmf(pmf, 16)
    for p, f in zip(pmf, freq, strict=True):  # within one count of p * (total - n), plus the 1
        assert abs(f - 1 - p * (65536 - len(pmf))) < 1


@pytest.mark.parametrize(
    "pmf, bits",
    [([], 16), ([0.0, 0.0], 16), ([0.5, -0.1], 16), ([float("nan")], 16), ([1.0] * 5, 2)],
)
def test_quantize_pmf_rejects(pmf, bits):
    with pytest.raises(ValueError):
        quantize_pmf(pmf, bits)


@pytest.mark.parametrize(
    "table",
    [
        Table((0, 65536), 0, 16),  # no escape
        Table((0, 3, 3, 65536), 0, 16),  # a zero frequency
        Table((0, 1, 65535), 0, 16),  # wrong total
        Table((1, 2, 65536), 0, 16),  # does not start at 0
        Table((0, 1, 1 << 17), 0, 17),  # precision too high
        Table((0, 1, 2), VALUE_MAX, 1),  # support past int32
    ],
)
def test_bad_tables_rejected(table):
    with pytest.raises(ValueError):
        table.check()


@pytest.mark.parametrize("value", [VALUE_MAX + 1, VALUE_MIN - 1, 2**70])
def test_values_outside_int32_rejected(value):
    with pytest.raises(ValueError, match="int32"):
        encode_values([value], [skewed_table()])


def test_value_count_must_match_tables():
    with pytest.raises(ValueError):
        encode_values([1, 2], [skewed_table()])


@pytest.fixture(scope="module")
def realistic():
    rng = random.Random(7)
    tables = realistic_tables(rng, 32)
    messages = [[sample_values(rng, t) for t in tables] for _ in range(1000)]
    return rng, tables, messages, [encode_values(m, tables) for m in messages]


def test_overhead_within_a_byte_of_the_information(realistic):
    _, tables, messages, codes = realistic
    ideal = [ideal_bits(m, tables) for m in messages]
    over_ceil = [len(c) - math.ceil(i / 8) for c, i in zip(codes, ideal, strict=True)]
    assert max(over_ceil) <= 1 and min(over_ceil) >= 0
    mean_over = sum(len(c) - i / 8 for c, i in zip(codes, ideal, strict=True)) / len(codes)
    assert 0 < mean_over < 0.7  # about half a byte: the last byte is on average half used


def test_codes_decode_the_same_from_bytes_bytearray_memoryview(realistic):
    _, tables, messages, codes = realistic
    for wrap in (bytes, bytearray, memoryview):
        assert decode_values(wrap(codes[0]), tables) == messages[0]


def truncate(code: bytes, n: int) -> bytes:
    return code[: max(len(code) - n, 0)]


@pytest.mark.parametrize(
    "damage, match, least",
    [
        pytest.param(lambda c: b"", "empty", 1.0, id="empty"),
        pytest.param(lambda c: c + b"\x00", "left over", 1.0, id="zero byte appended"),
        pytest.param(lambda c: c + b"\x00" * 8, "left over", 1.0, id="8 zero bytes appended"),
        # A cut code decodes to other values, which rarely need exactly its length: ~1% slip through.
        pytest.param(lambda c: truncate(c, 1), "truncated|corrupt", 0.95, id="last byte cut"),
        pytest.param(lambda c: truncate(c, 3), "truncated|corrupt", 0.99, id="3 bytes cut"),
        pytest.param(lambda c: c[:1], "truncated|corrupt", 0.99, id="first byte only"),
        pytest.param(lambda c: c + c, "left over|corrupt", 0.99, id="two codes run together"),
        pytest.param(lambda c: bytes([c[0] ^ 0x80]) + c[1:], "", 0.8, id="first bit flipped"),
        pytest.param(lambda c: c[:-1] + bytes([c[-1] ^ 0x01]), "", 0.8, id="last bit flipped"),
    ],
)
def test_damaged_codes_rejected(realistic, damage, match, least):
    _, tables, messages, codes = realistic
    rejected = 0
    for code, message in zip(codes[:200], messages, strict=False):
        try:
            assert decode_values(damage(code), tables) != message  # never the original, silently
        except CodeError as e:
            assert re.search(match, str(e))
            rejected += 1
    assert rejected >= least * 200


def test_detection_rates(realistic):
    rng, tables, _, codes = realistic
    rates = detection_rates(random.Random(3), codes[:500], tables)
    assert rates["truncated by 1 byte"] > 0.95 and rates["truncated by half"] > 0.99
    assert rates["1 byte appended"] > 0.95
    assert rates["1 bit flipped"] > 0.7 and rates["1 byte replaced"] > 0.7


@pytest.mark.parametrize("seed", range(5))
def test_random_bytes_are_rejected_or_canonical(realistic, seed):
    """Whatever decodes is exactly what the encoder writes for it: one code per message, never two."""
    _, tables, _, _ = realistic
    rng = random.Random(seed)
    accepted = 0
    for _ in range(300):
        data = rng.randbytes(rng.randint(1, 30))
        try:
            values = decode_values(data, tables)
        except CodeError:
            continue
        accepted += 1
        assert encode_values(values, tables) == data
    assert accepted < 150  # most random strings have the wrong length for what they decode to


def crafted(table: Table, gamma_zeros: int, tail_bits: int) -> bytes:
    """An escape, then gamma_zeros zeros, a 1 and tail_bits ones: n = 2**(gamma_zeros+1) - 1 if equal."""
    enc = RangeEncoder()
    escape = len(table.cdf) - 2
    enc.encode(table.cdf[escape], table.cdf[escape + 1] - table.cdf[escape], table.bits)
    for _ in range(gamma_zeros):
        enc.encode(0, 1, 1)
    enc.encode(1, 1, 1)
    enc.encode_bits((1 << tail_bits) - 1, tail_bits)
    return enc.finish()


def test_impossible_escapes_rejected():
    table = skewed_table()
    with pytest.raises(CodeError, match="longer than any int32"):
        decode_values(crafted(table, 41, 0), [table])
    with pytest.raises(CodeError, match="outside int32"):
        decode_values(crafted(table, 34, 34), [table])  # 2**35 - 1 escaped: past int32
    assert decode_values(crafted(table, 3, 3), [table]) == [5 - 1 - 14 // 2]  # gamma 15: e = 14, below


@pytest.mark.parametrize("count", [1, 64, 1000])
def test_near_certain_messages_take_one_byte(count):
    assert len(encode_values([5] * count, [skewed_table()] * count)) == 1
