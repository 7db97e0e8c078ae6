"""The layout: which package may import which (the table below, also in shared/__init__ and the README),
modules under 300 lines, and a one-line docstring saying what each module is for."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from importgraph import ROOT, imports_of

PACKAGES = ("shared", "services", "aelink")
# Each group of modules and the project packages it may import (a prefix allows everything under it).
# Beyond this table: a half's modules never import the other half (checked below).
MAY_IMPORT = {
    "shared.codec": ("shared.codec",),
    "shared.service": ("shared", "shared.codec", "shared.service"),
    "services.encoder": ("shared", "shared.codec", "shared.service", "services", "services.encoder"),
    "services.decoder": ("shared", "shared.codec", "shared.service", "services", "services.decoder"),
    "services": ("shared.service", "services"),  # `python -m services` imports a half by name, at run time
    "shared": (),
    "aelink": ("shared", "aelink"),
}
HALF_MODULES = {"encoder": {"shared.codec.encoder", "services.encoder"},
                "decoder": {"shared.codec.decoder", "services.decoder"}}
MAX_LINES = 300


def modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def group(name: str) -> str:
    """The most specific MAY_IMPORT key that name falls under."""
    keys = [k for k in MAY_IMPORT if name == k or name.startswith(k + ".")]
    return max(keys, key=len)


def allowed(target: str, prefixes: tuple[str, ...]) -> bool:
    # importing a package's own parents (e.g. `shared` for `shared.codec.x`) comes with the import
    return any(target == p or target.startswith(p + ".") for p in prefixes)


def project_imports(path: Path, package: str | None = None) -> set[str]:
    """The project modules a file imports, leaves only (a parent package is implied by its child)."""
    names = {n for n in imports_of(path, package) if n.split(".")[0] in PACKAGES}
    return {n for n in names if not any(m.startswith(n + ".") for m in names)}


@pytest.mark.parametrize("name", sorted(modules()))
def test_each_module_imports_only_what_its_package_may(name):
    path = modules()[name]
    rules = MAY_IMPORT[group(name)]
    bad = sorted(t for t in project_imports(path) if not allowed(t, rules))
    assert not bad, f"{path.relative_to(ROOT)} ({group(name)}) imports {bad}; it may import {rules}"
    for half, own in HALF_MODULES.items():
        other = HALF_MODULES["decoder" if half == "encoder" else "encoder"]
        if any(name == m or name.startswith(m + ".") for m in own):
            assert not {t for t in project_imports(path) if any(t == o or t.startswith(o + ".") for o in other)}


def test_nothing_in_shared_or_services_imports_the_tooling():
    for name, path in modules().items():
        if not name.startswith("aelink"):
            assert not [t for t in project_imports(path) if t.split(".")[0] == "aelink"], name


def test_the_rules_would_catch_a_bad_import(tmp_path):
    """Guard the guard: an upward import from the codec, and tooling from a service, are refused."""
    bad = tmp_path / "bad.py"
    bad.write_text("from shared.service.problems import Problem\nfrom aelink.training import train\n")
    targets = project_imports(bad, package="shared.codec")
    assert {t.rsplit(".", 1)[0] for t in targets} == {"shared.service.problems", "aelink.training"}
    assert not [t for t in targets if allowed(t, MAY_IMPORT["shared.codec"])]
    assert [t for t in targets if not allowed(t, MAY_IMPORT["services.encoder"])] == ["aelink.training.train"]


@pytest.mark.parametrize("name", sorted(modules()))
def test_each_module_is_short_and_says_what_it_is_for(name):
    path = modules()[name]
    lines = path.read_text().count("\n")
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines; split it"
    doc = ast.get_docstring(ast.parse(path.read_text()))
    assert doc and doc.strip(), f"{path.relative_to(ROOT)} has no module docstring"
    assert len(doc.splitlines()[0]) <= 110, f"{path.relative_to(ROOT)}: the first docstring line is its summary"
