"""Read services/Dockerfile as a builder would for one half: its ARGs, the files its COPY lines put in
the image, its ENV, CMD and HEALTHCHECK; and assemble that file tree in a folder (no Docker needed)."""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "services" / "Dockerfile"


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", dockerfile.read_text())
    rows = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(row.split(None, 1)[0].upper(), row.split(None, 1)[1] if " " in row else "") for row in rows]


@dataclass
class Image:
    """What one build of the Dockerfile holds: files (path in the image -> source), env, command."""

    args: dict[str, str]
    workdir: str = "/"
    files: dict[str, Path] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    cmd: list[str] = field(default_factory=list)
    healthcheck: list[str] = field(default_factory=list)
    user: str = "root"
    pip: list[str] = field(default_factory=list)

    def expand(self, text: str) -> str:
        values = {**self.args, **self.env}
        return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: values.get(m[1] or m[2], ""), text)

    def copy(self, sources: list[str], dest: str) -> None:
        dest = dest if dest.startswith("/") else f"{self.workdir.rstrip('/')}/{dest}"
        ignored = dockerignore()
        for src in sources:
            path = ROOT / src
            if not path.exists():
                raise FileNotFoundError(f"COPY {src}: no such file in the build context")
            if path.is_dir():  # a directory's contents go into dest
                for f in sorted(path.rglob("*")):
                    rel = f.relative_to(ROOT).as_posix()
                    if f.is_file() and not any(fnmatch.fnmatch(rel, pat) for pat in ignored):
                        self.files[f"{dest.rstrip('/')}/{f.relative_to(path).as_posix()}"] = f
            elif dest.endswith("/") or len(sources) > 1:
                self.files[dest + path.name] = path
            else:
                self.files[dest] = path

    def assemble(self, into: Path) -> Path:
        """The image's files under `into`; returns the working directory inside it."""
        for target, src in self.files.items():
            out = into / target.lstrip("/")
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, out)
        return into / self.workdir.lstrip("/")


def dockerignore() -> list[str]:
    pats = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    # '**/x' also matches at the top level, as Docker's matcher does
    return [p for pat in pats for p in (pat, pat.removeprefix("**/"))] + [f"{p}/*" for p in pats]


def read_image(half: str, dockerfile: Path = DOCKERFILE) -> Image:
    image = Image(args={})
    for op, rest in instructions(dockerfile):
        if op == "ARG":
            name, _, default = rest.partition("=")
            image.args[name] = half if name == "HALF" else default  # the build passes HALF
        elif op == "WORKDIR":
            image.workdir = image.expand(rest)
        elif op == "COPY":
            *sources, dest = image.expand(rest).split()
            image.copy(sources, dest)
        elif op == "ENV":
            for key, value in re.findall(r"(\w+)=(\S+)", rest):
                image.env[key] = image.expand(value)
        elif op == "USER":
            image.user = rest
        elif op == "RUN" and "pip install" in rest:
            image.pip.append(rest)
        elif op == "CMD":
            image.cmd = json.loads(rest)
        elif op == "HEALTHCHECK":
            image.healthcheck = json.loads(rest.split("CMD", 1)[1])
    return image
