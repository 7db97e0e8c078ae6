"""Training a vae: its KL term is the closed form, and on tiny real runs the KL weight trades the KL
term against reconstruction as it should; runs stay reproducible and resumable."""

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from aelink.training.autoencoder import Autoencoder
from aelink.training.autoencoder import kl_divergence as our_kl
from aelink.training.train import TrainOptions, train
from shared.codec.config import ModelConfig
from shared.codec.weights import read_half

TINY = ModelConfig("tiny-vae", kind="vae", code_size=4, widths=(8, 16), loss="bce")
SMALL = dict(train_subset=1024, test_subset=256, batch_size=128, progress=False)


def quiet(_):
    pass


def test_kl_is_the_closed_form_against_the_standard_normal():
    torch.manual_seed(0)
    mean, logvar = torch.randn(5, 16), torch.randn(5, 16)
    expected = kl_divergence(Normal(mean, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(1)
    assert torch.allclose(our_kl(mean, logvar), expected, atol=1e-5)
    assert torch.equal(our_kl(torch.zeros(2, 3), torch.zeros(2, 3)), torch.zeros(2))


def test_the_loss_is_reconstruction_plus_beta_kl_per_pixel_and_eval_uses_the_mean():
    model = Autoencoder(TINY.with_(beta=3.0))
    x = torch.rand(4, 1, 28, 28)
    torch.manual_seed(0)
    terms = model.train().terms(x, x)
    assert torch.allclose(terms["loss"], terms["distortion"] + 3.0 * terms["kl"] / 784)
    assert not torch.equal(model.terms(x, x)["logits"], terms["logits"])  # a fresh draw each time
    model.eval()
    first = model.terms(x, x)["logits"]
    assert torch.equal(first, model.terms(x, x)["logits"])
    assert torch.equal(first, model.decoder.logits(model.encoder(x)))  # the mean, as the sender sends it


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_dir):
    """Three epochs on 1,024 real images at a small and a large KL weight."""
    torch.set_num_threads(1)
    out = {}
    for beta in (0.1, 10.0):
        folder = tmp_path_factory.mktemp(f"beta{beta}")
        out[beta] = train(TINY.with_(beta=beta), TrainOptions(out=folder, epochs=3, data_dir=str(data_dir),
                                                              **SMALL), log=quiet)[0]
    return out


def test_a_tiny_run_learns_and_logs_its_kl(runs):
    history = runs[0.1]
    assert all(row["train_kl"] > 0 and row["val_kl"] > 0 for row in history)
    assert history[-1]["val_mse"] < history[0]["val_mse"]  # reconstruction improves


def test_a_heavier_kl_weight_buys_a_smaller_kl_with_worse_reconstructions(runs):
    light, heavy = runs[0.1][-1], runs[10.0][-1]
    assert heavy["val_kl"] < 0.5 * light["val_kl"]
    assert heavy["val_mse"] > light["val_mse"]


def test_a_resumed_vae_run_gives_the_same_weights(tmp_path, data_dir):
    """The posterior's noise comes from the global generator, which checkpoints keep."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    opts = dict(data_dir=str(data_dir), **{**SMALL, "train_subset": 512})
    train(TINY, TrainOptions(out=straight, epochs=2, **opts), log=quiet)
    train(TINY, TrainOptions(out=resumed, epochs=1, **opts), log=quiet)
    train(TINY, TrainOptions(out=resumed, epochs=2, resume=True, **opts), log=quiet)
    for half in ("encoder", "decoder"):
        a, b = read_half(straight / f"{half}.safetensors", half), read_half(resumed / f"{half}.safetensors", half)
        assert a[0]["fingerprint"] == b[0]["fingerprint"]
