"""The committed weights meet their quality figures on a sample of the real test set, and agree with
the model card that was measured from them."""

import json
from pathlib import Path

import pytest
import torch

from aelink.data.datasets import add_noise
from aelink.measure.evaluate import load_pair, reconstruct, score

WEIGHTS = Path(__file__).resolve().parents[2] / "weights"

SAMPLE = 2000  # the first 2,000 test images: representative, and seconds to score

# minimum mean per-image PSNR (dB, against clean images), from issue 2; denoise32 gets sigma-0.4 inputs
FLOORS = {"seed": 28.0, "compact32": 25.0, "denoise32": 20.0}
MODELS = ["seed", "compact16", "compact32", "compact64", "denoise32"]


@pytest.fixture(scope="module")
def card() -> dict:
    return {e["folder"]: e for e in json.loads((WEIGHTS / "metrics.json").read_text())}


@pytest.fixture(scope="module")
def sample(test_images) -> torch.Tensor:
    return test_images[:SAMPLE]


@pytest.mark.parametrize("model", MODELS)
def test_shipped_model_meets_its_figures(model, sample, card):
    encoder, decoder, meta = load_pair(WEIGHTS / model)
    assert meta.fingerprint == card[model]["fingerprint"]  # the card describes these very files
    sigma = meta.config.noise
    inputs = add_noise(sample, sigma, torch.Generator().manual_seed(0)) if sigma else sample
    row = score(model, reconstruct(encoder, decoder, inputs), sample, None)
    if model in FLOORS:
        assert row.psnr_mean_per_image >= FLOORS[model]
    # quality band: the sample agrees with the card's full-test-set figure
    full = card[model]["rows"][0]["psnr_mean_per_image"]
    assert abs(row.psnr_mean_per_image - full) < 1.0
    if sigma:  # denoising must beat its noisy input by a wide margin
        noisy = score("noisy", inputs, sample, None)
        assert row.psnr_mean_per_image > noisy.psnr_mean_per_image + 8


def test_compact_models_rank_by_code_size(sample):
    psnr = {}
    for model in ("compact16", "compact32", "compact64"):
        encoder, decoder, _ = load_pair(WEIGHTS / model)
        psnr[model] = score(model, reconstruct(encoder, decoder, sample), sample, None).psnr_mean_per_image
    assert psnr["compact16"] < psnr["compact32"] < psnr["compact64"]


def test_compact_models_beat_pca(card):
    for model in ("compact16", "compact32", "compact64"):
        ours, pca = card[model]["rows"][:2]
        assert pca["method"].startswith("pca") and pca["code_bytes"] == ours["code_bytes"]
        assert ours["psnr_mean_per_image"] > pca["psnr_mean_per_image"] + 3
