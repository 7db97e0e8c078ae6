"""The compiled coder against the reference: the same bytes, the same refusals, on random and real tables."""

import random
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from test_rangecoder import random_table, random_value, skewed_table

from shared.codec import rangecoder as rc
from shared.codec.batchcoder import BatchCoder
from shared.codec.encoder import load_encoder
from shared.codec.tables import EntropyTables

WEIGHTS = Path(__file__).resolve().parents[2] / "weights"


def reference(code: bytes, tables: list[rc.Table]) -> tuple[list[int] | None, str | None]:
    try:
        return rc.decode_values(code, tables), None
    except rc.CodeError as e:
        return None, str(e)


def damaged(rng: random.Random, code: bytes) -> list[bytes]:
    i = rng.randrange(len(code))
    return [code[:-1], code[: len(code) // 2], code + b"\0", code + bytes([rng.randrange(256)]), code + code,
            code[:i] + bytes([code[i] ^ (1 << rng.randrange(8))]) + code[i + 1:],
            code[:i] + bytes([rng.randrange(256)]) + code[i + 1:], rng.randbytes(rng.randint(1, 2 * len(code)))]


def assert_same_verdicts(coder: BatchCoder, tables: list[rc.Table], codes: list[bytes]) -> int:
    """Each code decodes to the reference's values or fails with its message; returns how many failed."""
    values, errors = coder.decode(codes)
    for code, row, error in zip(codes, values.tolist(), errors, strict=True):
        want, why = reference(code, tables)
        assert (None if error is None else str(error)) == why, code.hex()
        assert why is not None or row == want, code.hex()
    return sum(e is not None for e in errors)


@pytest.mark.parametrize("seed", range(12))
def test_random_tables_same_bytes_and_refusals(seed):
    rng = random.Random(seed)
    tables = [random_table(rng) for _ in range(rng.randint(1, 48))]
    messages = [[random_value(rng, t) for t in tables] for _ in range(24)]
    coder = BatchCoder(tables)
    codes = coder.encode(np.array(messages, dtype=np.int64).reshape(len(messages), len(tables)))
    assert codes == [rc.encode_values(m, tables) for m in messages]
    values, errors = coder.decode(codes)
    assert errors == [None] * len(codes) and values.tolist() == messages
    bad = [d for code in codes for d in damaged(rng, code)] + [b""]
    assert assert_same_verdicts(coder, tables, bad) > len(bad) // 2


@pytest.mark.parametrize(
    "tables, values",
    [
        pytest.param([], [], id="no values: one byte"),
        pytest.param([skewed_table()] * 300, [5] * 300, id="near-certain symbols"),
        pytest.param([skewed_table()] * 64, [6] * 64, id="probability-2**-16 symbols"),
        pytest.param([rc.Table((0, 1, 2), 0, 1)] * 4, [rc.VALUE_MIN, rc.VALUE_MAX, rc.VALUE_MIN + 1, rc.VALUE_MAX - 1],
                     id="int32 extremes escaped"),
        pytest.param([rc.Table((0, 1, 2), rc.VALUE_MAX - 1, 1)] * 2, [rc.VALUE_MIN, rc.VALUE_MAX],
                     id="support at the top of int32"),
        pytest.param([rc.make_table([0.5, 0.5], 0)] * 32, list(range(-16, 16)), id="mostly escapes"),
        pytest.param([rc.Table((0, 65535, 65536), 0, 16)] * 400, [1] * 400, id="the top symbol again and again"),
    ],
)
def test_edge_cases_same_bytes(tables, values):
    coder = BatchCoder(tables)
    codes = coder.encode(np.array([values], dtype=np.int64).reshape(1, len(tables)))
    assert codes == [rc.encode_values(values, tables)]
    assert coder.decode(codes)[0].tolist() == [values]


class CarryWatch(rc.RangeEncoder):
    """The reference encoder, counting the additions that change bytes it has already shifted out."""

    __slots__ = ()
    carries = 0

    def encode(self, start: int, size: int, bits: int) -> None:
        written, shifts = self._low >> 32, self._shifts
        super().encode(start, size, bits)
        CarryWatch.carries += (self._low >> (32 + 8 * (self._shifts - shifts))) != written


def test_carries_same_bytes(monkeypatch):
    """The compiled encoder adds a carry into bytes it has written, as the reference's big int does:
    symbols near the top of the range, again and again, carry through runs of 0xff."""
    monkeypatch.setattr(rc, "RangeEncoder", CarryWatch)
    monkeypatch.setattr(CarryWatch, "carries", 0)
    tables = [rc.Table((0, 1, 65536), 0, 16), rc.Table((0, 40000, 65536), 0, 16), rc.Table((0, 1, 2), 0, 1)] * 100
    rng = random.Random(1)
    messages = [[rng.choice([0, 1, 1, 1, 2]) for _ in tables] for _ in range(50)]
    want = [rc.encode_values(m, tables) for m in messages]
    assert CarryWatch.carries > 100
    assert BatchCoder(tables).encode(np.array(messages, dtype=np.int64)) == want


def test_longest_codes_fit():
    """Every value escaped as far as int32 reaches (16 + 65 bits each): the output buffer's bound holds."""
    tables = [rc.Table((0, 65535, 65536), rc.VALUE_MAX - 1, 16), rc.Table((0, 65535, 65536), rc.VALUE_MIN, 16)] * 392
    values = [rc.VALUE_MIN, rc.VALUE_MAX] * 392
    codes = BatchCoder(tables).encode(np.array([values, values[::-1]], dtype=np.int64))
    assert codes == [rc.encode_values(values, tables), rc.encode_values(values[::-1], tables)]
    assert 10 * len(values) < len(codes[0]) <= 11 * len(values) + 8


@pytest.mark.parametrize("value", [rc.VALUE_MAX + 1, rc.VALUE_MIN - 1])
def test_values_outside_int32_refused(value):
    with pytest.raises(ValueError, match=f"value {value} is outside int32"):
        BatchCoder([skewed_table()]).encode(np.array([[value]]))


def test_non_bytes_refused():
    with pytest.raises(TypeError, match="code 1 is int"):
        BatchCoder([skewed_table()]).decode([b"\x00", 5])


@pytest.fixture(scope="module", params=["rd10", "rd16", "rd64"])
def real(request, test_images):
    """A shipped rd model's tables and the latents of 300 real test digits."""
    encoder, _ = load_encoder(WEIGHTS / request.param / "encoder.safetensors")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a shared machine; 300 digits are quick on one thread
    with torch.no_grad():
        latents = encoder(test_images[:300])
    torch.set_num_threads(threads)
    return encoder.entropy, latents


def test_real_tables_same_codes_as_reference(real):
    """Shipped tables, real digits: the reference's bytes (so its sizes), values and refusals."""
    entropy, latents = real
    codes = entropy.compress(latents)
    tables, medians = rc_tables(entropy)
    m = medians.view(1, -1, 1)
    q = torch.round(latents.reshape(len(latents), entropy.channels, -1) - m).flatten(1).to(torch.int64)
    assert codes == [rc.encode_values(row, tables) for row in q.tolist()]
    assert torch.equal(entropy.decompress(codes), (q.view(len(q), entropy.channels, -1).float() + m).view_as(latents))
    rng = random.Random(0)
    bad = [d for code in codes[:40] for d in damaged(rng, code)]
    assert assert_same_verdicts(BatchCoder(tables), tables, bad) > 0.8 * len(bad)


def rc_tables(entropy: EntropyTables) -> tuple[list[rc.Table], torch.Tensor]:
    """The reference's table per coded value, channel-major, and the medians."""
    from shared.codec.tables import coder_tables

    per_channel, medians = coder_tables(entropy.tables())
    return [t for t in per_channel for _ in range(entropy.positions)], medians


def test_decompress_each_keeps_batch_mates(real):
    entropy, latents = real
    codes = entropy.compress(latents[:6])
    alone = entropy.decompress(codes)
    batch = [codes[0], codes[1][:-1], codes[2], b"", codes[4] + b"\x17", codes[5]]
    y, errors = entropy.decompress_each(batch)
    assert [e is None for e in errors] == [True, False, True, False, False, True]
    assert "empty code" in str(errors[3]) and "left over" in str(errors[4])
    for i in (0, 2, 5):
        assert torch.equal(y[i], alone[i])
    with pytest.raises(rc.CodeError, match="^code 1: "):
        entropy.decompress(batch)


def test_quantisation_is_torch_rounding():
    """round(y - median) + median in the kernels, ties to even, equals the float32 torch arithmetic."""
    gen = torch.Generator().manual_seed(0)
    medians = torch.cat([torch.tensor([0.0, 0.5, -0.5, 0.25]), torch.randn(12, generator=gen) * 3])
    y = torch.cat([torch.randn(500, 16, generator=gen) * 30, torch.randint(-80, 80, (300, 16), generator=gen) / 2,
                   torch.randint(-40, 40, (300, 16), generator=gen) + medians + 0.5])
    tables = [rc.make_table([0.2] * 5, -2)] * 16
    codes = BatchCoder(tables, 1, medians.numpy()).compress(y.numpy())
    q = torch.round(y - medians)
    assert codes == [rc.encode_values(row, tables) for row in q.to(torch.int64).tolist()]
    decoded, errors = BatchCoder(tables, 1, medians.numpy()).decompress(codes)
    assert errors == [None] * len(codes) and torch.equal(torch.from_numpy(decoded), q + medians)


@pytest.mark.parametrize("bad, match", [(float("nan"), "finite"), (float("inf"), "finite"),
                                        (1e12, "too large"), (2.0**31, "2147483648 is outside int32")])
def test_compress_refusals(bad, match):
    y = np.zeros((3, 4), np.float32)
    y[1, 2] = bad
    with pytest.raises(ValueError, match=match):
        BatchCoder([skewed_table()] * 4, 1, np.zeros(4, np.float32)).compress(y)


def test_threads_share_a_coder(real):
    """The kernels release the GIL and keep no state: threads coding at once get what one gets alone."""
    entropy, latents = real
    want = entropy.compress(latents)
    got: list[list[bytes]] = [[] for _ in range(4)]

    def work(i: int) -> None:
        for _ in range(5):
            got[i] = entropy.compress(latents)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == [want] * 4


NO_CACHE = """
import numba.core.caching as caching
caching.CacheImpl._locator_classes = []  # as in an image whose user can write nowhere
import numpy as np
from shared.codec import rangecoder as rc
from shared.codec.batchcoder import BatchCoder
coder = BatchCoder([rc.make_table([0.5, 0.25], 0)] * 3, 1, np.zeros(3, np.float32))
codes = coder.compress(np.array([[0, 1, 7]], np.float32))
assert codes == [rc.encode_values([0, 1, 7], [rc.make_table([0.5, 0.25], 0)] * 3)]
print(coder.decompress(codes)[0].tolist())
"""


def test_compiles_without_a_cache_directory():
    """Where numba may write no cache (a read-only image, no home), the kernels compile in the process."""
    out = subprocess.run([sys.executable, "-c", NO_CACHE], capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).resolve().parents[2], check=True)
    assert out.stdout.strip() == "[[0.0, 1.0, 7.0]]"
