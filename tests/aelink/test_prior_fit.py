"""Fitting a vae's mixture prior on tiny real runs: at the end of `aelink train`, and onto an existing
run with `aelink prior fit`; the halves agree, load, and their samples decode."""

from pathlib import Path

import numpy as np
import pytest
import torch

from aelink.cli import main
from aelink.data.datasets import load_split, to_tensor
from aelink.training.export import export_checkpoint
from aelink.training.mixture import encode_means, fit_mixture
from aelink.training.train import TrainOptions, train
from shared.codec.config import ModelConfig
from shared.codec.decoder import load_decoder
from shared.codec.encoder import load_encoder
from shared.codec.latent import sample_prior
from shared.codec.weights import WeightsError, read_half

# a light KL weight: at beta 1 a tiny run decodes every code to the same blur
TINY = ModelConfig("tiny-vae", kind="vae", code_size=4, widths=(8, 16), loss="bce", beta=0.01)
# two epochs at 3x the usual lr: after less, every draw decodes to the same grey blur
WEIGHTS = Path(__file__).resolve().parents[2] / "weights"
SMALL = dict(epochs=2, lr=3e-3, train_subset=1024, test_subset=128, batch_size=128, progress=False)


def quiet(_):
    pass


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_dir):
    """Two epochs on 1,024 real images, with a 5-component prior fitted at the end and without one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = {}
    try:
        for name, config in (("fitted", TINY.with_(prior_components=5)), ("plain", TINY)):
            out[name] = tmp_path_factory.mktemp(name)
            train(config, TrainOptions(out=out[name], data_dir=str(data_dir), **SMALL), log=quiet)
    finally:
        torch.set_num_threads(threads)
    return out


def check_pair(folder, config):
    """Both halves load with the same config and fingerprint; the decoder's prior draws digits."""
    decoder, meta = load_decoder(folder / "decoder.safetensors")
    encoder, enc_meta = load_encoder(folder / "encoder.safetensors")
    assert meta.config == enc_meta.config == config and meta.fingerprint == enc_meta.fingerprint
    z = sample_prior(config, 16, 0, mixture=decoder.prior)
    with torch.no_grad():
        images = decoder(torch.from_numpy(z))
    assert images.shape == (16, 1, 28, 28) and bool(torch.isfinite(images).all())
    assert images.min() >= 0 and images.max() <= 1
    assert images.max() > 0.3 and (images - images.mean(0)).abs().max() > 0.05  # ink, and not all alike
    return encoder, decoder, meta


def test_train_fits_the_prior_to_the_training_codes_before_writing_the_halves(runs, data_dir):
    config = TINY.with_(prior_components=5)
    encoder, decoder, meta = check_pair(runs["fitted"], config)
    codes = encode_means(encoder, to_tensor(load_split("train", data_dir)[0][:1024]))
    weights, means, _ = decoder.prior.arrays()
    # EM's M step sets the weighted mean of the components' means to the codes' mean
    assert np.allclose(weights @ means, codes.mean(0), atol=1e-3 * (1 + np.abs(codes).max()))
    # the same fit again, from the same codes and seed: the same mixture
    again, _ = fit_mixture(codes, 5, seed=0)
    assert np.allclose(again["means"], means, atol=1e-4)
    # the checkpoint holds the fitted prior too: exporting it gives the very same pair
    out = runs["fitted"] / "exported"
    assert export_checkpoint(runs["fitted"] / "checkpoint.pt", out) == meta.fingerprint


def test_prior_fit_gives_an_existing_run_its_prior(runs, data_dir, tmp_path):
    plain = runs["plain"]
    code = main(["prior", "fit", str(plain), "--components", "3", "--out", str(tmp_path),
                 "--data-dir", str(data_dir)])
    assert code == 0
    config = TINY.with_(prior_components=3)
    _, _, meta = check_pair(tmp_path, config)
    # the encoder is the run's own; only the config (and so the fingerprint) says a prior joined
    before, after = read_half(plain / "encoder.safetensors", "encoder"), read_half(tmp_path / "encoder.safetensors", "encoder")
    assert before[0]["encoder_sha256"] == after[0]["encoder_sha256"]
    assert before[0]["fingerprint"] != meta.fingerprint
    # fitting again (another count of components) replaces the prior; the same seed, the same pair
    again = tmp_path / "again"
    assert main(["prior", "fit", str(plain / "checkpoint.pt"), "--components", "3", "--out", str(again),
                 "--data-dir", str(data_dir)]) == 0
    assert read_half(again / "decoder.safetensors", "decoder")[0]["fingerprint"] == meta.fingerprint


def test_prior_fit_refuses_what_has_no_prior(tmp_path, data_dir, capsys):
    compact = ModelConfig("tiny", code_size=4, widths=(8, 16))
    run = tmp_path / "compact"
    train(compact, TrainOptions(out=run, data_dir=str(data_dir), **{**SMALL, "train_subset": 128}), log=quiet)
    assert main(["prior", "fit", str(run), "--data-dir", str(data_dir)]) == 2
    assert "vae models only" in capsys.readouterr().err
    assert main(["prior", "fit", str(tmp_path / "nowhere")]) == 2
    assert "no such checkpoint" in capsys.readouterr().err


def test_export_refuses_a_checkpoint_whose_prior_was_never_fitted(tmp_path, data_dir):
    """A run stopped before its end holds the prior's zeros: export says how to fit it."""
    from aelink.training.train import Trainer

    config = TINY.with_(prior_components=2)
    trainer = Trainer(config, TrainOptions(out=tmp_path, data_dir=str(data_dir), **SMALL))
    trainer.save_checkpoint()
    with pytest.raises(WeightsError, match="aelink prior fit"):
        export_checkpoint(tmp_path / "checkpoint.pt", tmp_path / "out")


def test_the_card_judges_the_fitted_prior_with_n01_beside_it(runs, test_images):
    """Each vae's default prior at temperature 1 (the target row) and 0.8; N(0, I) at 1 beside a fitted one."""
    import json

    from aelink.judge.card import judge_prior, render_judge
    from aelink.judge.net import load_classifier
    from aelink.judge.score import SAMPLES, Judge

    classifier, info = load_classifier(WEIGHTS / "classifier" / "classifier.safetensors")
    labels = torch.from_numpy(load_split("test", None)[1][:500].astype("int64"))
    judge = Judge(classifier, test_images[:500], labels, info)
    row = {"psnr_mean_per_image": 12.0, "accuracy": 50.0, "accuracy_drop": 40.0, "allowed_drop": 1.5,
           "agreement": 50.0, "meets_target": False}
    entries = []
    for name in ("fitted", "plain"):
        decoder, meta = load_decoder(runs[name] / "decoder.safetensors")
        samples = judge_prior(decoder, judge)
        entries.append({"model": f"{meta.config.name}-{name}", "config": json.loads(meta.config.to_json()),
                        "judge": judge.summary(), "rows": [row], "samples": samples})
    fitted, plain = (e["samples"] for e in entries)
    assert [(s["prior"], s["temperature"], s["target"]) for s in fitted] == [
        ("fitted", 1.0, True), ("fitted", 0.8, False), ("standard", 1.0, False)]
    assert [(s["prior"], s["temperature"], s["target"]) for s in plain] == [
        ("standard", 1.0, True), ("standard", 0.8, False)]
    assert all(s["samples"] == SAMPLES and abs(sum(s["class_shares"]) - 100) < 1e-3 for s in fitted + plain)
    text = "\n".join(render_judge(entries))
    assert "| tiny-vae-fitted | fitted (5 Gaussians) | 1 |" in text
    assert "| tiny-vae-fitted | N(0, I) | 1 |" in text and "| tiny-vae-plain | N(0, I) | 0.8 |" in text
    assert "tiny-vae-fitted: fitted (5 Gaussians); tiny-vae-plain: N(0, I)" in text  # the defaults, said
    assert "GaussianMixture" in text
    lines = [line for line in text.splitlines() if line.startswith("| tiny-vae")]
    assert sum(line.endswith("| - |") for line in lines) == 3  # only the two target rows have a verdict
