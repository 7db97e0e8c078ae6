"""docker-compose.yml and the Dockerfiles, checked statically (Docker does not run on the test machines):
the services, their ports, health checks on /readyz, settings, and which weights each image gets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from services.decoder.settings import DecoderSettings
from services.encoder.settings import EncoderSettings
from shared.config import PRESETS

ROOT = Path(__file__).resolve().parents[2]
HALVES = {"encoder": ("8001", EncoderSettings), "decoder": ("8002", DecoderSettings)}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", dockerfile.read_text())
    rows = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(row.split(None, 1)[0].upper(), row.split(None, 1)[1] if " " in row else "") for row in rows]


def test_compose_has_the_two_services_and_the_demo(compose):
    assert set(compose["services"]) == {"encoder", "decoder", "demo"}
    for name, svc in compose["services"].items():
        dockerfile = ROOT / svc["build"]["context"] / svc["build"]["dockerfile"]
        assert dockerfile == ROOT / "services" / name / "Dockerfile" and dockerfile.is_file()


@pytest.mark.parametrize("half", HALVES)
def test_each_service_publishes_its_port_and_checks_readyz(compose, half):
    port, settings = HALVES[half]
    svc = compose["services"][half]
    assert svc["ports"] == [f"{port}:{port}"]
    check = " ".join(svc["healthcheck"]["test"])
    assert f"127.0.0.1:{port}/readyz" in check
    assert {"interval", "timeout", "retries", "start_period"} <= set(svc["healthcheck"])
    prefix = f"AELINK_{half.upper()}_"
    for key in svc["environment"]:  # every variable is a real setting of this service
        assert key.startswith(prefix) and key[len(prefix):].lower() in settings.model_fields, key


@pytest.mark.parametrize("half", HALVES)
def test_each_image_holds_only_its_own_half_of_the_weights(half):
    port, _ = HALVES[half]
    steps = instructions(ROOT / "services" / half / "Dockerfile")
    copies = [args for op, args in steps if op in ("COPY", "ADD")]
    weights = [args.split() for args in copies if "weights" in args]
    # rd presets join the images when their weights are committed (issue 4 trains them later):
    # a COPY of a missing file would fail the build
    shipped = [m for m, c in PRESETS.items() if c.kind != "rd" or (ROOT / "weights" / m).is_dir()]
    assert sorted(src for src, _ in weights) == sorted(f"weights/{m}/{half}.safetensors" for m in shipped)
    assert all(dst == f"weights/{src.split('/')[1]}/" for src, dst in weights)  # folders kept, not flattened
    for args in copies:  # nothing copies the whole tree or the whole weights folder
        assert args.split()[0] not in (".", "weights", "weights/", "./weights"), args
    env = " ".join(args for op, args in steps if op == "ENV")
    assert f"AELINK_{half.upper()}_WEIGHTS_DIR=/app/weights" in env and f"AELINK_{half.upper()}_PORT={port}" in env
    assert f"AELINK_{half.upper()}_HOST=0.0.0.0" in env
    assert ("EXPOSE", port) in steps
    assert any(op == "HEALTHCHECK" and f"{port}/readyz" in args for op, args in steps)
    assert steps[-1] == ("CMD", f'["python", "-m", "services.{half}"]')


@pytest.mark.parametrize("name", ["encoder", "decoder", "demo"])
def test_torch_cpu_is_installed_first(name):
    steps = instructions(ROOT / "services" / name / "Dockerfile")
    pip = [args for op, args in steps if op == "RUN" and "pip install" in args]
    assert pip[0] == "pip install torch==2.13.0 --index-url ${TORCH_INDEX_URL}"
    assert ("ARG", "TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu") in steps
    assert pip[1:] == ["pip install ."]


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


@pytest.mark.parametrize("half, other", [("encoder", "decoder"), ("decoder", "encoder")])
def test_each_image_holds_only_its_own_service_code(half, other):
    copies = [args for op, args in instructions(ROOT / "services" / half / "Dockerfile") if op == "COPY"]
    sources = [src for args in copies for src in args.split()[:-1]]
    assert f"services/{half}" in sources
    assert not any(src in ("services", ".", f"services/{other}") for src in sources)
