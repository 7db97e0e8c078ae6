"""What the project's source files import, read with ast (nothing is run): the layout and boundary tests."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


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
