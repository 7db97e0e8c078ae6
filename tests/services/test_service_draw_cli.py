"""`aelink sample` and `aelink interpolate` end to end: they start the services they need, ask them over
HTTP, and save the figure; the sample grid holds the decoder's draws for the seed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from aelink.cli import main
from aelink.training.train import TrainOptions, train
from shared.codec.config import ModelConfig
from shared.codec.decoder import load_decoder
from shared.codec.latent import sample_prior
from shared.service.images import to_uint8

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
VAE = ModelConfig("tiny-vae", kind="vae", code_size=4, widths=(8, 16), loss="bce", beta=0.01)


@pytest.fixture(scope="module")
def weights(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("weights")
    torch.set_num_threads(1)
    train(VAE, TrainOptions(out=root / VAE.name, epochs=1, train_subset=512, test_subset=64,
                            data_dir=str(data_dir), progress=False), log=lambda _: None)
    return root


def test_sample_saves_the_seeded_draws_as_a_grid(weights, tmp_path, capsys):
    out = tmp_path / "samples.png"
    assert main(["sample", "-n", "6", "--seed", "5", "--columns", "3", "--model", VAE.name,
                 "--weights-dir", str(weights), "--out", str(out)]) == 0
    assert "standard prior, seed 5" in capsys.readouterr().out
    grid = np.asarray(Image.open(out))
    assert grid.shape == (2 + 2 * 58, 2 + 3 * 58)  # 2 rows, 3 columns of 56-pixel tiles, 2-pixel gaps
    decoder, _ = load_decoder(weights / VAE.name / "decoder.safetensors")
    with torch.inference_mode():
        expected = to_uint8(decoder(torch.from_numpy(sample_prior(VAE, 6, 5))).numpy())
    first = grid[2:58:2, 2:58:2]  # the first tile, every other pixel (each drawn 2x2)
    assert np.array_equal(first, expected[0])


def test_sample_says_why_a_model_cannot_draw_the_prior_asked(weights, tmp_path, capsys):
    assert main(["sample", "-n", "2", "--prior", "fitted", "--model", VAE.name, "--weights-dir", str(weights),
                 "--out", str(tmp_path / "none.png")]) == 1
    assert "409" in (err := capsys.readouterr().err) and "no fitted prior" in err
    assert not (tmp_path / "none.png").exists()


def test_interpolate_saves_a_strip_between_two_test_digits(weights, tmp_path, data_dir, capsys):
    out = tmp_path / "strip.png"
    assert main(["interpolate", "--test", "0", "1", "--steps", "5", "--model", VAE.name, "--weights-dir",
                 str(weights), "--data-dir", str(data_dir), "--out", str(out)]) == 0
    assert "5 images from test0.png to test1.png" in capsys.readouterr().out
    assert Image.open(out).size[0] > 5 * 28 * 3  # five tiles of 84 pixels, and the labels


def test_interpolate_needs_two_digits(capsys):
    assert main(["interpolate", "--decoder", "http://127.0.0.1:9", "--encoder", "http://127.0.0.1:9"]) == 2
    assert "two PNG files" in capsys.readouterr().err
