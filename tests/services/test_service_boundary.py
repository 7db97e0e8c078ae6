"""The boundary: the encoder service never holds decoder code or tensors, and the other way round.

Checked twice: in a real process that builds and starts each service (what it loaded), and statically
over the source (what any service file imports, followed through the repository's own modules).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from importgraph import imports_of, reachable
from safetensors import safe_open

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
ROOT = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("boundary_probe.py")
# What each service must never import: the other half, and the tooling (training joins both halves).
JOINED = {"aelink", "aelink.training.autoencoder", "aelink.training.train", "aelink.measure.evaluate",
          "aelink.training.export"}
FORBIDDEN = {
    "encoder": {"shared.codec.decoder", "services.decoder"} | JOINED,
    "decoder": {"shared.codec.encoder", "services.encoder"} | JOINED,
}
OTHER = {"encoder": "decoder", "decoder": "encoder"}


@pytest.fixture(scope="module", params=["compact32", "rd64"])
def probes(request, weights_dir):
    """Both probes run at once; each is a fresh interpreter holding one service (a compact model, then an
    entropy-coded one, whose halves also hold coding tables)."""
    procs = {
        half: subprocess.Popen(
            [sys.executable, str(PROBE), half], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, f"AELINK_{half.upper()}_WEIGHTS_DIR": str(weights_dir),
                 f"AELINK_{half.upper()}_MODEL": request.param})
        for half in FORBIDDEN
    }
    results = {}
    for half, proc in procs.items():
        out, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, err
        results[half] = json.loads(out.strip().splitlines()[-1])
    return request.param, results


def tensor_names(path: Path) -> set[str]:
    with safe_open(str(path), framework="numpy") as f:
        return set(f.keys())


@pytest.mark.parametrize("half", ["encoder", "decoder"])
def test_a_started_service_holds_only_its_own_half(probes, weights_dir, half):
    model, results = probes
    probe = results[half]
    assert probe["ready"]
    modules = set(probe["modules"])
    assert f"shared.codec.{half}" in modules and f"services.{half}.main" in modules
    assert not modules & FORBIDDEN[half], sorted(modules & FORBIDDEN[half])
    own = tensor_names(weights_dir / model / f"{half}.safetensors")
    other = tensor_names(weights_dir / model / f"{OTHER[half]}.safetensors") - own  # rd: both hold tables
    assert other  # the other half has layers of its own
    assert set(probe["state_keys"]) == own
    assert not set(probe["state_keys"]) & other


@pytest.mark.parametrize("half", ["encoder", "decoder"])
def test_no_service_file_imports_the_other_half(half):
    files = sorted((ROOT / "services" / half).rglob("*.py"))
    assert files
    for path in files:
        bad = imports_of(path) & FORBIDDEN[half]
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"
    start = {".".join(p.relative_to(ROOT).with_suffix("").parts) for p in files}
    bad = reachable(start) & FORBIDDEN[half]
    assert not bad, f"services/{half} reaches {sorted(bad)} through the repository's imports"


def test_shared_plumbing_imports_neither_half():
    files = [*(ROOT / "shared" / "codec" / "wire").rglob("*.py"), ROOT / "aelink" / "client.py",
             *(ROOT / "shared" / "service").rglob("*.py")]
    halves = (FORBIDDEN["encoder"] | FORBIDDEN["decoder"]) - {"aelink"}  # the client is aelink's own
    for path in files:
        bad = imports_of(path) & halves
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_the_static_check_would_catch_an_import(tmp_path):
    """Guard the guard: the import parser sees the forms a careless edit would use."""
    sample = tmp_path / "sample.py"
    for line, caught in [("from shared.codec import decoder", "shared.codec.decoder"),
                         ("import shared.codec.decoder as d", "shared.codec.decoder"),
                         ("from shared.codec.decoder import Decoder", "shared.codec.decoder"),
                         ("from ..decoder import api", "services.decoder"),
                         ("def f():\n    from aelink.training.autoencoder import Autoencoder", "aelink.training.autoencoder")]:
        sample.write_text(line + "\n")
        assert caught in imports_of(sample, package="services.encoder"), line
