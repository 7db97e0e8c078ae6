"""The vae kind's config and halves, and what a receiver draws alone: prior samples and straight lines."""

import json

import numpy as np
import pytest
import torch

from aelink.training.autoencoder import Autoencoder
from shared.codec.config import PRESETS, ModelConfig, preset
from shared.codec.decoder import Decoder
from shared.codec.encoder import Encoder
from shared.codec.latent import interpolate, sample_prior
from shared.codec.weights import split_state

VAE = ModelConfig("tiny-vae", kind="vae", code_size=4, widths=(8, 16), loss="bce")


def test_a_vae_is_a_true_vae_by_default_and_beta_is_a_vae_setting():
    assert VAE.beta == 1.0 and VAE.has_prior and not VAE.entropy_coded
    assert json.loads(VAE.to_json())["beta"] == 1.0
    assert ModelConfig.from_json(VAE.with_(beta=0.25).to_json()).beta == 0.25
    with pytest.raises(ValueError, match="beta > 0"):
        ModelConfig("x", kind="vae", code_size=4, beta=0.0)
    with pytest.raises(ValueError, match="vae models only"):
        ModelConfig("x", kind="compact", code_size=4, beta=1.0)
    with pytest.raises(ValueError, match="likelihood"):
        ModelConfig("x", kind="vae", code_size=4, loss="psnr")


@pytest.mark.parametrize("name", [n for n, c in PRESETS.items() if c.kind != "vae"])
def test_older_kinds_keep_their_exact_config_json(name):
    """beta is a LATER_FIELD: the JSON (and so the pair fingerprints of shipped weights) is unchanged."""
    config = preset(name)
    assert config.beta == 0.0 and not config.has_prior
    assert "beta" not in json.loads(config.to_json())
    assert ModelConfig.from_json(config.to_json()) == config


def test_the_log_variance_head_is_the_encoders_and_forward_gives_the_mean():
    model = Autoencoder(VAE).eval()
    halves = split_state(model.export_state())
    assert {"logvar.weight", "logvar.bias"} <= set(halves["encoder"])
    assert not [k for k in halves["decoder"] if "logvar" in k]
    assert set(halves["decoder"]) == set(Decoder(VAE).state_dict())
    x = torch.rand(3, 1, 28, 28)
    mean, logvar = model.encoder.moments(x)
    assert torch.equal(model.encoder(x), mean) and logvar.shape == mean.shape == (3, 4)
    assert isinstance(model.encoder, Encoder)


def test_sampling_is_deterministic_for_a_seed():
    a, b = sample_prior(VAE, 8, 7), sample_prior(VAE, 8, 7)
    assert a.dtype == np.float32 and a.shape == (8, 4) and np.array_equal(a, b)
    assert not np.array_equal(a, sample_prior(VAE, 8, 8))
    assert np.array_equal(sample_prior(VAE, 3, 7), a[:3])  # more digits keep the first draws
    assert np.allclose(sample_prior(VAE, 8, 7, 0.5), 0.5 * a)  # temperature scales the std
    assert not sample_prior(VAE, 2, 7, 0.0).any()  # temperature 0: the prior's mean


def test_sampling_needs_a_prior_and_sane_arguments():
    with pytest.raises(ValueError, match="no prior"):
        sample_prior(preset("compact32"), 1, 0)
    for bad in ({"n": 0}, {"seed": -1}, {"temperature": -0.1}, {"temperature": float("nan")}):
        with pytest.raises(ValueError):
            sample_prior(VAE, **{"n": 1, "seed": 0, **bad})


def test_interpolation_includes_both_ends_exactly():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(16, 7, 7)).astype(np.float32), rng.normal(size=(16, 7, 7)).astype(np.float32)
    line = interpolate(a, b, 5)
    assert line.shape == (5, 16, 7, 7) and line.dtype == np.float32
    assert np.array_equal(line[0], a) and np.array_equal(line[-1], b)
    assert np.allclose(line[2], (a + b) / 2, atol=1e-6)
    with pytest.raises(ValueError):
        interpolate(a, b, 1)
    with pytest.raises(ValueError):
        interpolate(a, b[:8], 3)
