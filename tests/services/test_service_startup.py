"""Start-up fails fast, non-zero, with a message naming the file (bad weights) or the variable (bad settings)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from service_helpers import OCTET, assert_problem

from aelink.client import LocalService, free_port
from services.decoder.settings import DecoderSettings
from services.encoder.settings import EncoderSettings
from shared.service.settings import SettingsError, load_settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
OTHER = {"encoder": "decoder", "decoder": "encoder"}


def make_missing(src: Path, dst: Path, half: str) -> None:
    dst.mkdir(parents=True)


def make_garbage(src: Path, dst: Path, half: str) -> None:
    dst.mkdir(parents=True)
    (dst / f"{half}.safetensors").write_bytes(b"this is not a safetensors file at all")


def make_truncated(src: Path, dst: Path, half: str) -> None:
    dst.mkdir(parents=True)
    data = (src / f"{half}.safetensors").read_bytes()
    (dst / f"{half}.safetensors").write_bytes(data[: len(data) // 2])


def make_flipped(src: Path, dst: Path, half: str) -> None:
    dst.mkdir(parents=True)
    data = bytearray((src / f"{half}.safetensors").read_bytes())
    data[-100] ^= 0xFF  # a byte inside the last tensor: the file parses, its SHA-256 does not match
    (dst / f"{half}.safetensors").write_bytes(bytes(data))


def make_wrong_half(src: Path, dst: Path, half: str) -> None:
    dst.mkdir(parents=True)
    shutil.copy(src / f"{OTHER[half]}.safetensors", dst / f"{half}.safetensors")


# Each kind of failure runs as a real process; the variants of "corrupt" that need no process of their
# own (each costs a torch import) run the same start-up in this process.
PROCESS_CASES = {  # name -> (how to break the folder, words stderr must hold beside the file's path)
    "missing": (make_missing, ["no such weights file"]),
    "garbage": (make_garbage, ["not a readable safetensors file"]),
    "wrong half": (make_wrong_half, ["holds the", "half"]),
}
IN_PROCESS_CASES = {
    "truncated": (make_truncated, ["not a readable safetensors file"]),
    "flipped byte": (make_flipped, ["SHA-256", "corrupt"]),
}
HALVES = ["encoder", "decoder"]


@pytest.fixture(scope="module")
def failures(weights_dir, tmp_path_factory):
    """Start every broken service at once (start-ups overlap), then collect status and stderr of each."""
    root = tmp_path_factory.mktemp("broken")
    procs = {}
    for half in HALVES:
        for name, (make, _) in PROCESS_CASES.items():
            folder = root / f"{half}-{name.replace(' ', '-')}"
            make(weights_dir / "compact32", folder / "compact32", half)
            cmd = [sys.executable, "-m", f"services.{half}", "--port", str(free_port()), "--weights-dir", str(folder),
                   "--model", "compact32"]
            procs[half, name] = (folder / "compact32" / f"{half}.safetensors",
                                 subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = {}
    for key, (path, proc) in procs.items():
        try:
            _, err = proc.communicate(timeout=90)
        finally:
            proc.kill()
        results[key] = (path, proc.returncode, err)
    return results


@pytest.mark.parametrize("case", PROCESS_CASES)
@pytest.mark.parametrize("half", HALVES)
def test_bad_weights_stop_start_up_naming_the_file(failures, half, case):
    path, code, err = failures[half, case]
    assert code != 0, err
    assert str(path) in err, err
    for word in PROCESS_CASES[case][1]:
        assert word in err, err
    assert "Application startup failed" in err


@pytest.mark.parametrize("case", IN_PROCESS_CASES)
@pytest.mark.parametrize("half", HALVES)
def test_corrupt_weights_fail_the_app_start_up(weights_dir, tmp_path, half, case):
    import asyncio
    import importlib

    from shared.codec.weights import WeightsError

    make, words = IN_PROCESS_CASES[case]
    make(weights_dir / "compact32", tmp_path / "compact32", half)
    main = importlib.import_module(f"services.{half}.main")
    settings_cls = EncoderSettings if half == "encoder" else DecoderSettings
    app = main.create_app(settings_cls(weights_dir=tmp_path, model="compact32"))

    async def start() -> None:
        async with app.router.lifespan_context(app):
            pass

    with pytest.raises(WeightsError) as info:
        asyncio.run(start())
    assert str(tmp_path / "compact32" / f"{half}.safetensors") in str(info.value)
    for word in words:
        assert word in str(info.value)
    assert not app.state.runtime.ready


@pytest.mark.parametrize("env, variable", [
    ({"AELINK_ENCODER_PORT": "eighty"}, "AELINK_ENCODER_PORT"),
    ({"AELINK_ENCODER_MAX_IMAGES": "0"}, "AELINK_ENCODER_MAX_IMAGES"),
    ({"AELINK_ENCODER_MODEL": "../etc"}, "AELINK_ENCODER_MODEL"),
    ({"AELINK_ENCODER_TOKEN": " "}, "AELINK_ENCODER_TOKEN"),
    ({"AELINK_ENCODER_MAX_REQUEST_BYTES": "-5"}, "AELINK_ENCODER_MAX_REQUEST_BYTES"),
])
def test_bad_settings_fail_naming_the_variable(monkeypatch, env, variable):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(SettingsError, match=variable):
        load_settings(EncoderSettings)


def test_settings_defaults_start_with_no_arguments(monkeypatch):
    for k in list(__import__("os").environ):
        if k.startswith(("AELINK_ENCODER_", "AELINK_DECODER_")):
            monkeypatch.delenv(k)
    e, d = load_settings(EncoderSettings), load_settings(DecoderSettings)
    root = Path(__file__).resolve().parents[2]
    assert e.half_path("encoder") == root / "weights" / "rd64" / "encoder.safetensors"
    assert d.half_path("decoder") == root / "weights" / "rd64" / "decoder.safetensors"
    assert (e.port, d.port, e.token, e.model) == (8001, 8002, None, "rd64")


def test_bad_settings_stop_the_process_with_status_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "services.decoder"], capture_output=True, text=True, timeout=60,
                          env={**__import__("os").environ, "AELINK_DECODER_MAX_IMAGES": "lots"})
    assert proc.returncode == 2 and "AELINK_DECODER_MAX_IMAGES" in proc.stderr, proc.stderr


def test_model_setting_picks_another_preset(weights_dir, dec):
    """The model is chosen by setting: the seed preset, whose code is a 32x7x7 feature map. Its codes
    are not the compact32 decoder's to decode: 409, naming both fingerprints."""
    if not (weights_dir / "seed" / "encoder.safetensors").is_file():
        pytest.skip(f"no seed weights in {weights_dir}")
    import httpx
    import numpy as np

    svc = LocalService("encoder", env={"AELINK_ENCODER_WEIGHTS_DIR": str(weights_dir),
                                       "AELINK_ENCODER_MODEL": "seed"}).start()
    try:
        svc.wait_ready(90)
        info = httpx.get(f"{svc.url}/v1/model").json()
        assert info["name"] == "seed" and info["code_shape"] == [32, 7, 7]
        r = httpx.post(f"{svc.url}/v1/encode", content=np.zeros(784, np.uint8).tobytes(),
                       headers={"Content-Type": OCTET})
        assert r.json()["shape"] == [32, 7, 7]
        refused = dec.post("/v1/decode", content=r.content, headers={"Content-Type": "application/json"})
        assert_problem(refused, 409, info["fingerprint"], dec.get("/v1/model").json()["fingerprint"])
        models = httpx.get(f"{svc.url}/v1/models").json()
        assert [m["name"] for m in models["models"] if m["active"]] == ["seed"]
    finally:
        svc.stop()
