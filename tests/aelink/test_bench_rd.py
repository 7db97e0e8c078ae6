"""`aelink bench rd` on a few real test images, with small untrained models: every family is measured, the
image codecs' sizes are real files, and the outputs (CSV, JSON, plot) are written."""

import csv
import json

import pytest
import torch

from aelink.measure.bench_rd import bench_rd, format_table
from aelink.training.autoencoder import Autoencoder
from shared.codec.config import ModelConfig
from shared.codec.weights import save_halves

MODELS = [ModelConfig("tiny-rd", kind="rd", code_size=4, widths=(8, 16), loss="mse", lmbda=0.01,
                      latent="positional"),
          ModelConfig("tiny-compact", code_size=8, widths=(8, 16), loss="mse")]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    for config in MODELS:
        save_halves(config, Autoencoder(config).eval().export_state(), root / config.name)
    return root


@pytest.fixture(scope="module")
def points(folders, train_images, test_images):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return bench_rd(train_images[:2000], test_images[:40], sorted(folders.iterdir()), [8], log=lambda _: None)
    finally:
        torch.set_num_threads(threads)


def test_every_family_is_measured(points):
    families = {p.family for p in points}
    assert families == {"rd", "compact f32", "compact u8", "PCA f32", "PCA u8", "PNG", "WebP lossless",
                        "WebP lossy", "JPEG"}
    by = {(p.family, p.method): p for p in points}
    assert by[("compact f32", "tiny-compact")].bytes == 32 and by[("compact u8", "tiny-compact")].bytes == 16
    assert by[("PCA f32", "k8")].bytes == 32 and by[("PCA u8", "k8")].bytes == 16
    assert by[("PNG", "optimize")].psnr == by[("WebP lossless", "lossless")].psnr == 100.0  # lossless, capped
    jpeg = sorted((p for p in points if p.family == "JPEG"), key=lambda p: int(p.method[1:]))
    assert [p.bytes for p in jpeg] == sorted(p.bytes for p in jpeg)  # higher quality, larger files
    rd = by[("rd", "tiny-rd")]
    assert rd.estimate_bytes < rd.bytes < rd.estimate_bytes + 3  # a byte of varint, under one of coder
    assert "tiny-rd" in format_table(points)


def test_cli_writes_table_json_and_plot(folders, data_dir, tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib draws rd.png; pyproject installs it")
    from aelink.cli import main

    out = tmp_path / "bench"
    assert main(["bench", "rd", "--weights-root", str(folders), "--limit", "20", "--pca", "4",
                 "--data-dir", str(data_dir), "--out", str(out)]) == 0
    rows = list(csv.DictReader((out / "rd.csv").open()))
    assert {"family", "method", "bytes", "psnr", "ssim", "estimate_bytes", "accuracy", "agreement"} == set(rows[0])
    assert json.loads((out / "rd.json").read_text())["images"] == 20
    assert (out / "rd.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_with_the_judge_every_point_has_its_accuracy(train_images, test_images, data_dir, tmp_path):
    """A vae joins as a fixed-length codec; lossless files keep every original's class."""
    from pathlib import Path

    from aelink.data.datasets import load_split
    from aelink.judge.score import load_judge
    from aelink.measure.bench_rd import write_outputs

    vae = ModelConfig("tiny-vae", kind="vae", code_size=4, widths=(8, 16), loss="bce")
    save_halves(vae, Autoencoder(vae).eval().export_state(), tmp_path / vae.name)
    labels = torch.from_numpy(load_split("test", data_dir)[1][:40].astype("int64"))
    classifier = Path(__file__).resolve().parents[2] / "weights" / "classifier" / "classifier.safetensors"
    judge = load_judge(classifier, test_images[:40], labels)
    points = bench_rd(train_images[:2000], test_images[:40], [tmp_path / vae.name], [8], log=lambda _: None,
                      judge=judge)
    assert {"vae f32", "vae u8"} <= {p.family for p in points}
    assert all(p.accuracy is not None and p.agreement is not None for p in points)
    png = next(p for p in points if p.family == "PNG")
    assert png.accuracy == judge.original_accuracy and png.agreement == 100.0
    assert "acc%" in format_table(points)
    pytest.importorskip("matplotlib")
    write_outputs(points, tmp_path / "bench", 40)
    assert "accuracy" in (tmp_path / "bench" / "rd.csv").read_text().splitlines()[0]
