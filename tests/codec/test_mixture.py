"""A vae's fitted prior: prior_components in the config (older JSON unchanged), the mixture's sampling,
and its tensors in the decoder half alone, checked by the strict load."""

import json

import numpy as np
import pytest
import torch

from aelink.training.autoencoder import Autoencoder
from shared.codec.config import PRESETS, ModelConfig, preset
from shared.codec.decoder import Decoder, load_decoder
from shared.codec.encoder import Encoder, load_encoder
from shared.codec.latent import choose_prior, sample_prior
from shared.codec.mixture import MixturePrior
from shared.codec.weights import WeightsError, read_tensors, save_halves, split_state, write_tensors

VAE = ModelConfig("tiny-vae", kind="vae", code_size=2, widths=(8, 16), loss="bce")
FITTED = VAE.with_(prior_components=3)
# a hand-made mixture over 2 numbers: far-apart means, one correlated and one thin component
WEIGHTS = np.array([0.5, 0.3, 0.2])
MEANS = np.array([[-4.0, 0.0], [3.0, 3.0], [2.0, -5.0]])
COVS = np.array([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.8], [0.8, 1.0]], [[0.25, 0.0], [0.0, 2.0]]])


def mixture() -> MixturePrior:
    m = MixturePrior(3, 2)
    m.load(WEIGHTS, MEANS, np.linalg.cholesky(COVS))
    return m


def test_prior_components_is_a_later_field_of_vae_models_only():
    assert "prior_components" not in json.loads(VAE.to_json())  # older configs keep their exact JSON
    assert json.loads(FITTED.to_json())["prior_components"] == 3
    assert ModelConfig.from_json(FITTED.to_json()) == FITTED
    assert ModelConfig.from_json(VAE.to_json()) == VAE and VAE.prior_components == 0
    assert FITTED.to_json() != VAE.to_json()
    for bad in (dict(kind="vae", prior_components=-1), dict(kind="compact", prior_components=2),
                dict(kind="vae", prior_components=1.5), dict(kind="vae", prior_components=True)):
        with pytest.raises(ValueError, match="prior_components"):
            ModelConfig("x", code_size=4, **bad)


def test_no_older_preset_has_a_fitted_prior_and_vae32_has_a_hundred_components():
    for name, config in PRESETS.items():
        if name != "vae32":
            assert config.prior_components == 0 and "prior_components" not in config.to_json()
    vae32 = preset("vae32")
    assert (vae32.kind, vae32.code_size, vae32.beta, vae32.prior_components) == ("vae", 32, 0.1, 100)


def test_mixture_sampling_is_deterministic_and_keeps_the_first_draws():
    m = mixture()
    a = sample_prior(FITTED, 40, 7, mixture=m)
    assert a.dtype == np.float32 and a.shape == (40, 2)
    assert np.array_equal(a, sample_prior(FITTED, 40, 7, mixture=mixture()))
    assert not np.array_equal(a, sample_prior(FITTED, 40, 8, mixture=m))
    assert np.array_equal(sample_prior(FITTED, 300, 7, mixture=m)[:40], a)  # a larger n keeps the first
    assert not np.array_equal(a, sample_prior(FITTED, 40, 7))  # N(0, I) is another prior


def test_standard_sampling_is_unchanged_byte_for_byte():
    """Models without a fitted prior draw exactly as before: float32 normals from default_rng(seed)."""
    expected = np.random.default_rng(5).standard_normal((6, 2), dtype=np.float32) * np.float32(0.7)
    assert np.array_equal(sample_prior(VAE, 6, 5, 0.7), expected)
    assert np.array_equal(sample_prior(FITTED, 6, 5, 0.7), expected)  # the mixture only when given


def test_temperature_zero_gives_the_component_means():
    z = sample_prior(FITTED, 50, 3, 0.0, mixture=mixture())
    means = MEANS.astype(np.float32)
    assert all(any(np.array_equal(row, mean) for mean in means) for row in z)
    assert len({tuple(row) for row in z}) == 3  # 50 draws pick every component


def test_many_draws_have_the_mixtures_mean_and_covariance():
    z = sample_prior(FITTED, 200_000, 0, mixture=mixture()).astype(np.float64)
    mean = WEIGHTS @ MEANS
    cov = sum(w * (c + np.outer(m - mean, m - mean)) for w, m, c in zip(WEIGHTS, MEANS, COVS, strict=True))
    assert np.allclose(z.mean(0), mean, atol=0.05)
    assert np.allclose(np.cov(z.T), cov, atol=0.1)
    # each component's share: the draws nearest each mean (they are well apart)
    nearest = np.argmin(((z[:, None, :] - MEANS[None]) ** 2).sum(-1), axis=1)
    assert np.allclose(np.bincount(nearest) / len(z), WEIGHTS, atol=0.01)


def test_temperature_scales_each_components_spread():
    hot, cold = (sample_prior(FITTED, 20_000, 1, t, mixture=mixture()) for t in (1.0, 0.5))
    near = lambda z: z[np.argmin(((z[:, None, :] - MEANS[None]) ** 2).sum(-1), axis=1) == 0]  # noqa: E731
    assert np.allclose(near(cold).std(0), 0.5 * near(hot).std(0), rtol=0.05)


def test_a_mixture_must_be_a_distribution():
    with pytest.raises(ValueError, match="fitted"):
        MixturePrior(3, 2).check()  # a fresh one holds zeros
    with pytest.raises(ValueError, match="shape|expected"):
        MixturePrior(3, 2).load(WEIGHTS, MEANS[:2], np.linalg.cholesky(COVS))
    with pytest.raises(ValueError, match="lower triangular"):
        MixturePrior(3, 2).load(WEIGHTS, MEANS, np.transpose(np.linalg.cholesky(COVS), (0, 2, 1)))
    with pytest.raises(ValueError, match="diagonal"):
        MixturePrior(3, 2).load(WEIGHTS, MEANS, -np.linalg.cholesky(COVS))
    m = mixture()
    assert np.allclose(m.covariances(), COVS, atol=1e-6)


def test_the_prior_is_chosen_by_name_and_fitted_is_the_default():
    fitted, standard = Decoder(FITTED), Decoder(VAE)
    assert choose_prior(fitted, None) == ("fitted", fitted.prior)
    assert choose_prior(fitted, "standard") == ("standard", None)
    assert choose_prior(standard, None) == ("standard", None)
    with pytest.raises(ValueError, match="no fitted prior"):
        choose_prior(standard, "fitted")
    with pytest.raises(ValueError):
        choose_prior(fitted, "other")


@pytest.fixture
def halves(tmp_path):
    model = Autoencoder(FITTED).eval()
    model.decoder.prior.load(WEIGHTS, MEANS, np.linalg.cholesky(COVS))
    save_halves(FITTED, model.export_state(), tmp_path)
    return tmp_path


def test_the_prior_is_in_the_decoder_half_only(halves):
    state = split_state(Autoencoder(FITTED).export_state())
    assert {"prior.weights", "prior.means", "prior.scale_tril"} <= set(state["decoder"])
    assert not [k for k in state["encoder"] if "prior" in k]
    assert "prior" not in dict(Encoder(FITTED).named_children())
    decoder, meta = load_decoder(halves / "decoder.safetensors")
    encoder, enc_meta = load_encoder(halves / "encoder.safetensors")
    assert meta.config == enc_meta.config == FITTED and meta.fingerprint == enc_meta.fingerprint
    assert torch.allclose(decoder.prior.means, torch.tensor(MEANS, dtype=torch.float32))
    assert np.array_equal(sample_prior(FITTED, 5, 2, mixture=decoder.prior), sample_prior(FITTED, 5, 2, mixture=mixture()))


def rewrite(path, change) -> None:
    """The half with its tensors changed and its digests left as they were (the strict load's checks come
    before the digest's)."""
    meta, tensors = read_tensors(path)
    change(tensors)
    write_tensors(tensors, path, meta)


@pytest.mark.parametrize("change, words", [
    (lambda t: t.pop("prior.scale_tril"), "missing"),
    (lambda t: t.update({"prior.means": torch.zeros(3, 5)}), "prior.means"),
    (lambda t: t.update({"prior.weights": torch.zeros(4)}), "prior.weights"),
])
def test_the_strict_load_refuses_a_missing_or_misshapen_prior(halves, change, words):
    path = halves / "decoder.safetensors"
    rewrite(path, change)
    with pytest.raises(WeightsError, match=words):
        load_decoder(path)


def test_an_unfitted_prior_is_refused_at_load(tmp_path):
    save_halves(FITTED, Autoencoder(FITTED).export_state(), tmp_path)  # zeros: never fitted
    with pytest.raises(WeightsError, match="no valid fitted prior"):
        load_decoder(tmp_path / "decoder.safetensors")
    load_encoder(tmp_path / "encoder.safetensors")  # the encoder half has nothing to do with it
