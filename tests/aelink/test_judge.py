"""The judge: trained by its command, its recorded accuracy is real, its verdicts follow issue 11's
targets, and the model card's judge figures are what a fresh evaluation gives."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from aelink.cli import main
from aelink.data.datasets import load_split
from aelink.judge.net import load_classifier
from aelink.judge.score import Judge, judge_samples
from aelink.measure.evaluate import load_pair, reconstruct

WEIGHTS = Path(__file__).resolve().parents[2] / "weights"


@pytest.fixture(scope="module")
def labels(data_dir) -> torch.Tensor:
    return torch.from_numpy(load_split("test", data_dir)[1].astype("int64"))


def test_the_command_trains_a_judge_whose_recorded_accuracy_is_real(tmp_path, data_dir, test_images, labels,
                                                                     capsys):
    out = tmp_path / "classifier.safetensors"
    assert main(["classifier", "train", "--epochs", "1", "--train-subset", "3000", "--threads", "1",
                 "--out", str(out), "--data-dir", str(data_dir)]) == 0
    judge, info = load_classifier(out)
    assert info["train_images"] == 3000 and info["test_images"] == 10_000 and out.stat().st_size < 300_000
    again = Judge(judge, test_images, labels).original_accuracy
    assert again == pytest.approx(info["test_accuracy"], abs=1e-9) and again > 30  # 24 steps: 50.4% measured
    assert (tmp_path / "history.json").is_file()


def test_foreign_or_missing_files_are_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match="no classifier weights"):
        load_classifier(tmp_path / "none.safetensors")
    other = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(2)}, str(other), metadata={"format": "something-else"})
    with pytest.raises(ValueError, match="not an aelink classifier"):
        load_classifier(other)


def test_verdicts_follow_the_targets(test_images, labels):
    judge, _ = load_classifier(WEIGHTS / "classifier" / "classifier.safetensors")
    j = Judge(judge, test_images[:500], labels[:500])
    same = j.identity(test_images[:500], psnr=100.0)
    assert same["accuracy"] == j.original_accuracy and same["agreement"] == 100.0 and same["meets_target"]
    blank = j.identity(torch.zeros_like(test_images[:500]), psnr=10.0)
    assert blank["allowed_drop"] == 1.5 and not blank["meets_target"] and blank["agreement"] < 30
    assert j.identity(test_images[:500], psnr=24.0)["allowed_drop"] == 0.5


def test_sample_verdicts_need_confidence_and_every_class():
    sure = torch.eye(10).repeat(100, 1)  # 1,000 digits, 100 of each class, all certain
    assert judge_samples(sure)["meets_target"] and judge_samples(sure)["confident_share"] == 100.0
    lopsided = torch.eye(10)[torch.tensor([1] * 200 + list(range(10)) * 80)]
    assert not judge_samples(lopsided)["meets_target"]  # class 1 is 20.8% of them
    unsure = torch.full((1000, 10), 0.1)
    assert judge_samples(unsure)["confident_share"] == 0.0 and not judge_samples(unsure)["meets_target"]


def test_the_cards_judge_figures_come_from_a_real_evaluation(test_images, labels):
    """Recompute compact16's verdict on all 10,000 test images and compare with metrics.json."""
    card = {e["folder"]: e for e in json.loads((WEIGHTS / "metrics.json").read_text())}
    judge, info = load_classifier(WEIGHTS / "classifier" / "classifier.safetensors")
    j = Judge(judge, test_images, labels, info)
    assert card["compact16"]["judge"]["original_accuracy"] == pytest.approx(j.original_accuracy, abs=1e-6)
    encoder, decoder, meta = load_pair(WEIGHTS / "compact16")
    assert meta.fingerprint == card["compact16"]["fingerprint"]
    recorded = card["compact16"]["rows"][0]
    fresh = j.identity(reconstruct(encoder, decoder, test_images), recorded["psnr_mean_per_image"])
    for key in ("accuracy", "agreement", "accuracy_drop"):
        assert fresh[key] == pytest.approx(recorded[key], abs=1e-6), key


def test_the_cards_drawn_digit_figures_come_from_the_shipped_decoder():
    """vae32's 1,000 draws (seed 0, temperature 1) judged again give the card's figures."""
    from aelink.judge.score import SAMPLE_SEED, SAMPLES
    from shared.codec.decoder import load_decoder
    from shared.codec.latent import sample_prior

    card = {e["folder"]: e for e in json.loads((WEIGHTS / "metrics.json").read_text())}
    recorded = next(s for s in card["vae32"]["samples"]
                    if s["temperature"] == 1.0 and s.get("prior", "standard") == "standard")
    decoder, meta = load_decoder(WEIGHTS / "vae32" / "decoder.safetensors")
    assert meta.fingerprint == card["vae32"]["fingerprint"]
    judge, _ = load_classifier(WEIGHTS / "classifier" / "classifier.safetensors")
    with torch.no_grad():
        images = decoder(torch.from_numpy(sample_prior(meta.config, SAMPLES, SAMPLE_SEED, 1.0)))
    fresh = judge_samples(judge.probabilities(images))
    assert fresh["confident_share"] == pytest.approx(recorded["confident_share"], abs=1e-6)
    assert fresh["class_shares"] == pytest.approx(recorded["class_shares"], abs=1e-6)


def test_the_cards_fitted_prior_figures_and_drawings_come_from_the_shipped_decoder(tmp_path, test_images):
    """The target row (vae32's fitted prior, temperature 1) judged again, and the card's drawings made."""
    from PIL import Image

    from aelink.judge.card import draw_figures
    from aelink.judge.score import SAMPLE_SEED, SAMPLES
    from shared.codec.latent import choose_prior, sample_prior

    card = {e["folder"]: e for e in json.loads((WEIGHTS / "metrics.json").read_text())}
    recorded = next(s for s in card["vae32"]["samples"] if s["target"])
    assert recorded["prior"] == "fitted" and recorded["meets_target"]
    encoder, decoder, meta = load_pair(WEIGHTS / "vae32")
    judge, _ = load_classifier(WEIGHTS / "classifier" / "classifier.safetensors")
    mixture = choose_prior(decoder, "fitted")[1]
    with torch.no_grad():
        images = decoder(torch.from_numpy(sample_prior(meta.config, SAMPLES, SAMPLE_SEED, 1.0, mixture)))
    fresh = judge_samples(judge.probabilities(images))
    assert fresh["confident_share"] == pytest.approx(recorded["confident_share"], abs=1e-6) and fresh["meets_target"]
    folder = tmp_path / "vae32"
    drawn = draw_figures(encoder, decoder, test_images, folder)
    assert drawn == {"samples": "vae32/samples.png", "interpolation": "vae32/interpolation.png", "prior": "fitted"}
    # 8 x 8 tiles and 10 x 1 tiles of 56 pixels (28 drawn 2x2) with 2-pixel gaps
    assert Image.open(folder / "samples.png").size == (2 + 8 * 58, 2 + 8 * 58)
    assert Image.open(folder / "interpolation.png").size == (2 + 10 * 58, 60)
