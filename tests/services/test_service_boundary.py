"""The boundary: the encoder service never holds decoder code or tensors, and the other way round.

Checked twice: in a real process that builds and starts each service (what it loaded), and statically
over the source (what any service file imports, followed through the repository's own modules).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors import safe_open

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
ROOT = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("boundary_probe.py")
# What each service must never import: the other half, and the modules that join both halves.
JOINED = {"shared.autoencoder", "shared.train", "shared.evaluate", "shared.export"}
FORBIDDEN = {
    "encoder": {"shared.decoder", "services.decoder"} | JOINED,
    "decoder": {"shared.encoder", "services.encoder"} | JOINED,
}
OTHER = {"encoder": "decoder", "decoder": "encoder"}


@pytest.fixture(scope="module")
def probes(weights_dir):
    """Both probes run at once; each is a fresh interpreter holding one service."""
    procs = {
        half: subprocess.Popen(
            [sys.executable, str(PROBE), half], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, f"AELINK_{half.upper()}_WEIGHTS_DIR": str(weights_dir),
                 f"AELINK_{half.upper()}_MODEL": "compact32"})
        for half in FORBIDDEN
    }
    results = {}
    for half, proc in procs.items():
        out, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, err
        results[half] = json.loads(out.strip().splitlines()[-1])
    return results


def tensor_names(path: Path) -> set[str]:
    with safe_open(str(path), framework="numpy") as f:
        return set(f.keys())


@pytest.mark.parametrize("half", ["encoder", "decoder"])
def test_a_started_service_holds_only_its_own_half(probes, weights_dir, half):
    probe = probes[half]
    assert probe["ready"]
    modules = set(probe["modules"])
    assert f"shared.{half}" in modules and f"services.{half}.main" in modules
    assert not modules & FORBIDDEN[half], sorted(modules & FORBIDDEN[half])
    own = tensor_names(weights_dir / "compact32" / f"{half}.safetensors")
    other = tensor_names(weights_dir / "compact32" / f"{OTHER[half]}.safetensors")
    assert set(probe["state_keys"]) == own
    assert not set(probe["state_keys"]) & other


def module_file(name: str) -> Path | None:
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imports_of(path: Path, package: str | None = None) -> set[str]:
    """Every module a file imports, absolute names, including each parent package."""
    if package is None:
        package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base]).strip(".")
            names.add(base)
            names |= {f"{base}.{a.name}" for a in node.names}  # `from shared import decoder`
    expanded = set()
    for n in names:
        parts = n.split(".")
        expanded |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
    return expanded


def reachable(start: set[str]) -> set[str]:
    """The repository modules reachable by imports from `start` (third-party ones are not followed)."""
    seen, todo = set(), list(start)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = module_file(name)
        if path is not None:
            todo += [n for n in imports_of(path) if module_file(n) is not None]
    return seen


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
    files = [ROOT / "shared" / "wire.py", ROOT / "shared" / "client.py", *(ROOT / "shared" / "service").rglob("*.py")]
    halves = FORBIDDEN["encoder"] | FORBIDDEN["decoder"]
    for path in files:
        bad = imports_of(path) & halves
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_the_static_check_would_catch_an_import(tmp_path):
    """Guard the guard: the import parser sees the forms a careless edit would use."""
    sample = tmp_path / "sample.py"
    for line, caught in [("from shared import decoder", "shared.decoder"),
                         ("import shared.decoder as d", "shared.decoder"),
                         ("from shared.decoder import Decoder", "shared.decoder"),
                         ("from ..decoder import api", "services.decoder"),
                         ("def f():\n    from shared.autoencoder import Autoencoder", "shared.autoencoder")]:
        sample.write_text(line + "\n")
        assert caught in imports_of(sample, package="services.encoder"), line
