"""docker-compose.yml and the Dockerfiles, read statically (tests/services/test_service_image.py runs them):
the services, their ports, health checks on /readyz, settings, and which weights each image gets."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from dockerfile import DOCKERFILE, instructions, read_image

from services.decoder.settings import DecoderSettings
from services.encoder.settings import EncoderSettings
from shared.codec.config import PRESETS

ROOT = Path(__file__).resolve().parents[2]
HALVES = {"encoder": ("8001", EncoderSettings), "decoder": ("8002", DecoderSettings)}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_builds_both_halves_from_one_dockerfile(compose):
    assert {"encoder", "decoder", "demo"} <= set(compose["services"])
    for half in HALVES:
        build = compose["services"][half]["build"]
        assert ROOT / build["context"] / build["dockerfile"] == DOCKERFILE
        assert build["args"] == {"HALF": half}
    demo = compose["services"]["demo"]["build"]
    assert ROOT / demo["context"] / demo["dockerfile"] == ROOT / "services" / "demo" / "Dockerfile"


@pytest.mark.parametrize("half", HALVES)
def test_each_service_publishes_its_port_and_checks_readyz(compose, half):
    port, settings = HALVES[half]
    svc = compose["services"][half]
    assert svc["ports"] == [f"{port}:{port}"]
    assert svc["healthcheck"]["test"] == ["CMD", "python", "-m", "services", "healthcheck"]
    assert {"interval", "timeout", "retries", "start_period"} <= set(svc["healthcheck"])
    prefix = f"AELINK_{half.upper()}_"
    for key in svc["environment"]:  # every variable is a real setting of this service
        assert key.startswith(prefix) and key[len(prefix):].lower() in settings.model_fields, key


@pytest.mark.parametrize("half", HALVES)
def test_each_image_runs_its_own_half_with_the_settings_it_needs(half):
    port, settings = HALVES[half]
    image = read_image(half)
    assert image.env["AELINK_HALF"] == half and image.env[f"AELINK_{half.upper()}_HOST"] == "0.0.0.0"
    for key in image.env:  # every service variable is a real setting of a service
        if key.startswith("AELINK_") and key != "AELINK_HALF":
            owner = HALVES[key.split("_")[1].lower()][1]
            assert key.split("_", 2)[2].lower() in owner.model_fields, key
    assert settings().port == int(port)  # the port compose publishes is the service's own default
    assert image.cmd == ["python", "-m", "services"]
    assert image.healthcheck == ["python", "-m", "services", "healthcheck"]
    # every shipped model (a folder of weights/ with this half), and nothing else: a COPY of a missing
    # file fails the build, and a model left out could not be served from the image
    shipped = [d.name for d in (ROOT / "weights").iterdir() if (d / f"{half}.safetensors").is_file()]
    assert set(shipped) <= set(PRESETS)
    weights = sorted(p for p in image.files if "/weights/" in p)
    assert weights == sorted(f"/app/weights/{m}/{half}.safetensors" for m in shipped)


def test_the_dockerfile_takes_a_base_image_and_refuses_a_missing_half():
    steps = instructions(DOCKERFILE)
    assert steps[0] == ("ARG", "BASE_IMAGE=python:3.11-slim") and steps[1] == ("FROM", "${BASE_IMAGE}")
    assert ("ARG", "HALF") in steps
    assert any(op == "RUN" and "encoder|decoder" in args and "exit 1" in args for op, args in steps)
    assert ("ARG", "TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu") in steps


def test_the_demo_image_installs_torch_cpu_first():
    steps = instructions(ROOT / "services" / "demo" / "Dockerfile")
    pip = [args for op, args in steps if op == "RUN" and "pip install" in args]
    assert pip == ["pip install torch==2.13.0 --index-url ${TORCH_INDEX_URL}", "pip install ."]


def test_the_demo_waits_for_both_and_holds_no_weights(compose):
    demo = compose["services"]["demo"]
    assert demo["depends_on"] == {h: {"condition": "service_healthy"} for h in HALVES}
    assert "http://encoder:8001" in demo["command"] and "http://decoder:8002" in demo["command"]
    assert demo["command"][:2] == ["aelink", "demo"]
    assert any(v.endswith(":/data/mnist:ro") for v in demo["volumes"])
    steps = instructions(ROOT / "services" / "demo" / "Dockerfile")
    assert not [args for op, args in steps if op in ("COPY", "ADD") and "weights" in args]


def test_dockerignore_keeps_the_context_small_but_keeps_the_weights():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".git", ".venv", "runs", "data", "out"} <= ignored
    assert not any(line.rstrip("/") in ("weights", "weights/*", "**/*.safetensors") for line in ignored)
