"""`aelink send` and `aelink demo` end to end (`aelink serve` runs the session's token-guarded encoder)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from service_helpers import png

from shared.service.images import psnr

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def aelink(*args) -> subprocess.CompletedProcess:
    """The real command line, in a process of its own (the demo starts and stops services)."""
    return subprocess.run([sys.executable, "-m", "aelink.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=100)


def aelink_here(capsys, *args) -> subprocess.CompletedProcess:
    """The same entry point in this process: `send` starts nothing, so a new interpreter buys nothing."""
    from aelink.cli import main

    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out, err)


@pytest.fixture
def pngs(tmp_path, digits):
    paths = []
    for i in range(3):
        path = tmp_path / f"digit{i}.png"
        path.write_bytes(png(digits[i]))
        paths.append(path)
    return paths


def test_send_writes_reconstructions_figure_and_summary(services, pngs, digits, tmp_path, capsys):
    out = tmp_path / "out"
    r = aelink_here(capsys, "send", *pngs, "--encoder", services.encoder.url, "--decoder", services.decoder.url,
               "--out", out, "--format", "u8")
    assert r.returncode == 0, r.stderr
    assert "PSNR" in r.stdout and "codes on the wire" in r.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == 3 and summary["format"] == "u8" and summary["model"] == "compact32"
    assert summary["wire_bytes"] == 28 + 3 * 40  # one header, three 40-byte u8 codes
    assert summary["png_bytes"] == sum(p.stat().st_size for p in pngs)
    recons = sorted((out / "reconstructions").glob("*.png"))
    assert [p.name for p in recons] == ["000_digit0.png", "001_digit1.png", "002_digit2.png"]
    back = np.stack([np.asarray(Image.open(p)) for p in recons])
    assert summary["psnr_mean_db"] == pytest.approx(psnr(digits[:3], back).mean())
    fig = Image.open(out / "figure.png")
    assert fig.size[0] > 3 * 28 and fig.size[1] > 2 * 28


def test_send_reports_an_unreachable_service(services, pngs, tmp_path, capsys):
    r = aelink_here(capsys, "send", *pngs, "--encoder", services.encoder.url, "--decoder", "http://127.0.0.1:9",
               "--out", tmp_path / "out", "--retry-for", 1)
    assert r.returncode == 1 and "127.0.0.1:9" in r.stderr and "gave up after" in r.stderr, r.stderr


def test_send_refuses_a_file_that_is_no_digit(services, tmp_path, capsys):
    blank = tmp_path / "big.png"
    Image.new("L", (40, 40)).save(blank)  # the encoder finds no digit to fit
    r = aelink_here(capsys, "send", blank, "--encoder", services.encoder.url, "--decoder", services.decoder.url)
    assert r.returncode == 1 and "'big.png' (40x40 pixels): no digit found" in r.stderr, r.stderr
    text = tmp_path / "notes.png"
    text.write_text("not an image")  # refused before anything is sent
    r = aelink_here(capsys, "send", text, "--encoder", services.encoder.url, "--decoder", services.decoder.url)
    assert r.returncode == 2 and str(text) in r.stderr and "not a PNG, JPEG or WebP" in r.stderr, r.stderr


def test_send_takes_any_image_and_scores_what_the_sender_encoded(services, pngs, tmp_path, capsys):
    from digit_images import encoded, glyph, photo

    photo_path = tmp_path / "four.jpg"
    photo_path.write_bytes(encoded(photo(glyph(4), size=(320, 240), dark_on_light=True, noise=6), "JPEG", "RGB"))
    out = tmp_path / "out"
    r = aelink_here(capsys, "send", photo_path, pngs[0], "--encoder", services.encoder.url,
                    "--decoder", services.decoder.url, "--out", out)
    assert r.returncode == 0, r.stderr
    assert "fitted to MNIST form by the sender: 1 of 2" in r.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert [i["fitted"] for i in summary["per_image"]] == [True, False]
    assert summary["per_image"][1]["png_bytes"] == pngs[0].stat().st_size  # a 28x28 PNG counts its own bytes
    assert summary["per_image"][1]["psnr_db"] > 18 and summary["per_image"][0]["psnr_db"] > 18
    assert summary["wire_bytes"] == 28 + 2 * 128


def test_demo_starts_both_services_sends_digits_and_stops_them(weights_dir, data_dir, tmp_path):
    out = tmp_path / "demo"
    r = aelink("demo", "--count", 4, "--out", out, "--weights-dir", weights_dir, "--data-dir", data_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ready" in r.stdout and "stopped both services" in r.stdout and "PSNR" in r.stdout
    assert len(list((out / "originals").glob("*.png"))) == 4
    assert len(list((out / "reconstructions").glob("*.png"))) == 4
    assert (out / "figure.png").is_file()
    assert json.loads((out / "summary.json").read_text())["images"] == 4


def test_demo_can_use_running_services(services, data_dir, tmp_path, capsys):
    out = tmp_path / "demo"
    r = aelink_here(capsys, "demo", "--count", 2, "--out", out, "--data-dir", data_dir,
               "--encoder", services.encoder.url, "--decoder", services.decoder.url)
    assert r.returncode == 0, r.stderr
    assert "starting" not in r.stdout and json.loads((out / "summary.json").read_text())["images"] == 2
