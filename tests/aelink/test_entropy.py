"""The factorized prior, its integer tables, and compress/decompress of latents."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from aelink.measure.coder_bench import synthetic_latents
from aelink.training.prior import FactorizedPrior, build_tables, fit_prior, rate_bits
from shared.codec.rangecoder import CodeError
from shared.codec.tables import MAX_SUPPORT, EntropyTables, compress, decompress

ROOT = Path(__file__).resolve().parents[2]
CHANNELS = 6


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the machine is shared with trainings; these tensors are tiny anyway
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def prior():
    """A prior fitted to synthetic Laplace latents of assorted spreads and off-grid centres."""
    torch.manual_seed(0)
    p = FactorizedPrior(CHANNELS)
    fit_prior(p, synthetic_latents(20_000, CHANNELS, seed=1), steps=200, batch=2048)
    return p.eval()


@pytest.fixture(scope="module")
def tables(prior):
    return build_tables(prior)


def discrete_entropy(cdf, lo=-200, hi=200) -> float:
    """Entropy in bits of round(Y) for a continuous Y with the given cdf."""
    ps = [cdf(k + 0.5) - cdf(k - 0.5) for k in range(lo, hi + 1)]
    return -sum(p * math.log2(p) for p in ps if p > 0)


def test_fit_reaches_the_true_entropy():
    """Fit alone to Laplace(b=2) and Gaussian(sigma=3) samples: bits per symbol approach H(round(Y))."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(5)
    u = torch.rand(30_000, generator=gen).clamp(1e-7, 1 - 1e-7) - 0.5
    laplace = -2.0 * torch.sign(u) * torch.log1p(-2 * u.abs())
    gauss = 3.0 * torch.randn(30_000, generator=gen)
    samples = torch.stack([laplace, gauss], dim=1)  # (N, 2)
    prior = FactorizedPrior(2)
    history = fit_prior(prior, samples[:20_000], steps=300, batch=2048)
    assert history[-1] < history[0]
    _, likelihoods = prior.eval()(samples[20_000:])
    bits = (-torch.log2(likelihoods)).mean(0)  # (2,) on held-out samples
    true = torch.tensor([
        discrete_entropy(lambda x: 0.5 * math.exp(x / 2) if x < 0 else 1 - 0.5 * math.exp(-x / 2)),
        discrete_entropy(lambda x: 0.5 * math.erfc(-x / (3 * math.sqrt(2)))),
    ])
    assert (bits - true).abs().max() < 0.1, (bits, true)
    assert prior.quantiles()[:, 1].abs().max() < 0.3  # both medians are 0


@pytest.mark.parametrize("shape", [(5, 3), (4, 3, 2, 2)])
def test_forward_noise_then_rounding(shape):
    torch.manual_seed(1)
    prior = FactorizedPrior(3)
    y = torch.randn(shape) * 4
    y_tilde, likelihoods = prior.train()(y)
    assert y_tilde.shape == likelihoods.shape == y.shape
    assert (y_tilde - y).abs().max() <= 0.5 and not torch.equal(y_tilde, y)
    assert ((likelihoods >= 1e-9) & (likelihoods <= 1)).all()
    rate_bits(likelihoods).backward()  # the rate trains the density
    assert prior.matrices[0].grad is not None and prior.matrices[0].grad.abs().sum() > 0
    y_hat, _ = prior.eval()(y)
    medians = prior.quantiles()[:, 1].view(1, 3, *[1] * (len(shape) - 2))
    assert torch.equal(y_hat, torch.round(y - medians) + medians)


def test_prior_rejects_wrong_channels():
    with pytest.raises(ValueError):
        FactorizedPrior(3)(torch.zeros(2, 4))
    with pytest.raises(ValueError):
        FactorizedPrior(0)


@pytest.mark.parametrize("precision, max_support", [(16, MAX_SUPPORT), (12, 100), (8, 20), (16, 1)])
def test_tables_are_exact_integers(prior, precision, max_support):
    t = build_tables(prior, precision=precision, max_support=max_support)
    assert t["cdf"].shape == (CHANNELS, max_support + 2) and t["cdf"].dtype == torch.int32
    assert t["cdf_length"].dtype == t["offset"].dtype == torch.int32 and t["medians"].dtype == torch.float32
    for c in range(CHANNELS):
        n = int(t["cdf_length"][c])
        assert 3 <= n <= max_support + 2
        freq = torch.diff(t["cdf"][c, :n])
        assert int(t["cdf"][c, 0]) == 0 and int(freq.sum()) == 1 << precision and int(freq.min()) >= 1
        assert (t["cdf"][c, n:] == 1 << precision).all()  # padding


def test_tables_cover_the_tails(prior, tables):
    q = prior.quantiles()  # (C, 3)
    lo = tables["offset"].float() + tables["medians"]
    hi = lo + tables["cdf_length"].float() - 3
    assert (lo <= q[:, 0] + 1).all() and (hi >= q[:, 2] - 1).all()


def test_tables_trim_a_wide_prior_and_escape_the_rest():
    torch.manual_seed(2)
    prior = FactorizedPrior(2, init_scale=5000).eval()  # untrained: a density thousands wide
    t = build_tables(prior, max_support=64)
    assert (t["cdf_length"] == 66).all()
    y = torch.tensor([[0.0, 31.0], [-5000.0, 9000.0], [2.0**30, -(2.0**30)]])
    assert torch.equal(decompress(compress(y, t), t, 2), torch.round(y - t["medians"]) + t["medians"])


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("spread", [0.1, 3.0, 50.0, 1e6])
def test_compress_round_trip(prior, tables, seed, spread):
    gen = torch.Generator().manual_seed(seed)
    y = torch.randn(20, CHANNELS, generator=gen) * spread + torch.randn(CHANNELS, generator=gen)
    codes = compress(y, tables)
    assert len(codes) == 20 and all(isinstance(c, bytes) and c for c in codes)
    y_hat = decompress(codes, tables, CHANNELS)
    assert y_hat.dtype == torch.float32 and y_hat.shape == y.shape
    assert torch.equal(y_hat, prior(y)[0])  # the same values the eval-mode prior trains the decoder on
    assert torch.equal(decompress(codes[3:4], tables, CHANNELS), y_hat[3:4])  # each code stands alone


def test_compress_edge_cases(tables):
    m = tables["medians"]
    assert compress(torch.zeros(0, CHANNELS), tables) == []
    assert decompress([], tables, CHANNELS).shape == (0, CHANNELS)
    extreme = torch.stack([m + 2.0**31 - 1024, m - 2.0**31 + 1024, m * 0]).round()  # near int32 ends
    assert torch.equal(decompress(compress(extreme, tables), tables, CHANNELS), torch.round(extreme - m) + m)


@pytest.mark.parametrize(
    "latents, match",
    [
        (torch.full((1, CHANNELS), float("nan")), "finite"),
        (torch.full((1, CHANNELS), float("inf")), "finite"),
        (torch.full((1, CHANNELS), 1e12), "too large"),
        (torch.zeros(1, CHANNELS + 1), "expected"),
        (torch.zeros(CHANNELS), "expected"),
    ],
)
def test_compress_rejects(tables, latents, match):
    with pytest.raises(ValueError, match=match):
        compress(latents, tables)


def test_bad_tables_rejected(tables):
    with pytest.raises(ValueError, match="lack"):
        compress(torch.zeros(1, CHANNELS), {k: v for k, v in tables.items() if k != "cdf"})
    with pytest.raises(ValueError, match="empty or malformed"):
        EntropyTables(CHANNELS).compress(torch.zeros(1, CHANNELS))  # never loaded
    broken = {k: v.clone() for k, v in tables.items()}
    broken["cdf"][0, 1] = broken["cdf"][0, 2]  # a zero frequency
    with pytest.raises(ValueError, match="frequency"):
        compress(torch.zeros(1, CHANNELS), broken)
    with pytest.raises(ValueError, match="channels"):
        decompress([b"\x00"], tables, CHANNELS + 1)
    with pytest.raises(TypeError):
        decompress([5], tables, CHANNELS)  # not a code: bytes(5) would be five zero bytes


@pytest.fixture(scope="module")
def sample_codes(tables):
    y = synthetic_latents(200, CHANNELS, seed=3)
    return compress(y, tables), decompress(compress(y, tables), tables, CHANNELS)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda c: b"", id="empty"),
        pytest.param(lambda c: c[:-1], id="last byte cut"),
        pytest.param(lambda c: c[: len(c) // 2], id="half cut"),
        pytest.param(lambda c: c + b"\x00", id="zero byte appended"),
        pytest.param(lambda c: c + b"\x17\x42", id="garbage appended"),
        pytest.param(lambda c: bytes([c[0] ^ 0xFF]) + c[1:], id="first byte inverted"),
    ],
)
def test_damaged_codes_raise_code_error(tables, sample_codes, damage):
    codes, _ = sample_codes
    rejected = 0
    for i, code in enumerate(codes[:100]):
        batch = [codes[0], damage(code)] if i else [damage(code)]
        try:
            decompress(batch, tables, CHANNELS)
        except CodeError as e:
            assert str(e).startswith(f"code {len(batch) - 1}: ")  # names the bad code
            rejected += 1
    assert rejected >= 90  # the rest decode to other latents: see shared.codec.rangecoder on detection
    assert issubclass(CodeError, ValueError)


def test_estimate_matches_real_bytes(prior, tables):
    y = synthetic_latents(2000, CHANNELS, seed=4)
    _, likelihoods = prior(y)
    estimate = rate_bits(likelihoods).item() / len(y)  # bits per code
    real = 8 * sum(map(len, compress(y, tables))) / len(y)
    assert estimate < real < estimate * 1.01 + 6  # the last byte is on average half used: +4 bits


def test_entropy_tables_module(tables, sample_codes):
    codes, y_hat = sample_codes
    module = EntropyTables(CHANNELS)
    assert set(module.state_dict()) == {"cdf", "cdf_length", "offset", "medians"}
    module.load_tables(tables)
    assert module.compress(y_hat) == codes and torch.equal(module.decompress(codes), y_hat)
    restored = EntropyTables(CHANNELS)
    restored.load_state_dict(module.state_dict())  # as load_half fills a half's module
    assert torch.equal(restored.decompress(codes), y_hat)
    with pytest.raises(ValueError, match="holds"):
        EntropyTables(CHANNELS, max_support=100).load_tables(tables)  # buffer shapes are fixed


CHILD = """
import json, sys, torch
from safetensors.torch import load_file
import shared.codec.tables as E
assert not {"shared.codec.encoder", "shared.codec.decoder"} & set(sys.modules), "the tables import a half"
t = load_file(sys.argv[1])
tables = {k: t[k] for k in E.TABLE_KEYS}
codes = [bytes.fromhex(h) for h in json.loads(sys.argv[2])]
out = {"codes": [c.hex() for c in E.compress(t["y"], tables)],
       "decoded": E.decompress(codes, tables, t["y"].shape[1]).tolist()}
print(json.dumps(out))
"""


def test_codes_agree_across_processes(tmp_path, tables, sample_codes):
    """Another process, with only the tables, makes the same bytes and decodes ours to the same floats."""
    codes, y_hat = sample_codes
    path = tmp_path / "tables.safetensors"
    save_file({**tables, "y": y_hat}, str(path))
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), json.dumps([c.hex() for c in codes])],
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=True,
    )
    out = json.loads(result.stdout)
    assert [bytes.fromhex(h) for h in out["codes"]] == codes
    assert torch.equal(torch.tensor(out["decoded"], dtype=torch.float32), y_hat)
