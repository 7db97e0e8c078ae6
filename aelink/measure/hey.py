"""Run the compiled load generator `hey` (Debian package) and read its summary into numbers."""

from __future__ import annotations

import re
import resource
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

INSTALL_HINT = "install the `hey` load generator: apt-get install -y hey"


class HeyMissing(RuntimeError):
    """`hey` is not on PATH."""


@dataclass
class HeyResult:
    seconds: float  # wall time hey reports for the whole run
    ok: int  # 2xx answers
    errors: int  # other statuses plus transport errors (refused, reset, timeouts)
    per_second: float  # 2xx answers per second
    p50_ms: float | None
    p99_ms: float | None
    statuses: dict[str, int]
    error_lines: list[str]
    cpu_seconds: float  # hey's own user + system CPU time: how much of the machine the client took

    def as_dict(self) -> dict:
        return asdict(self)


def hey_path() -> str:
    path = shutil.which("hey")
    if path is None:
        raise HeyMissing(f"`hey` not found on PATH; {INSTALL_HINT}")
    return path


def run_hey(url: str, *, concurrency: int, seconds: float, method: str = "GET", body: Path | None = None,
            content_type: str | None = None, accept: str | None = None, timeout: float = 20) -> HeyResult:
    """`hey -z` for `seconds` with `concurrency` workers (keep-alive connections, one request at a time each)."""
    cmd = [hey_path(), "-z", f"{seconds:g}s", "-c", str(concurrency), "-m", method, "-t", f"{timeout:g}"]
    if body is not None:
        cmd += ["-D", str(body)]
    if content_type:
        cmd += ["-T", content_type]
    if accept:
        cmd += ["-H", f"Accept: {accept}"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run([*cmd, url], capture_output=True, text=True, timeout=seconds + timeout + 30)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise RuntimeError(f"hey failed (status {out.returncode}): {out.stderr.strip()[:500]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return parse_summary(out.stdout, cpu)


def _section(text: str, title: str) -> list[str]:
    """The indented lines under `title:` up to the next blank line."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() == f"{title}:":
            block = []
            for nxt in lines[i + 1:]:
                if not nxt.strip():
                    break
                block.append(nxt.strip())
            return block
    return []


def parse_summary(text: str, cpu_seconds: float = 0.0) -> HeyResult:
    """hey's default text summary -> HeyResult. Percentiles are over answered requests only (as hey's)."""
    total = re.search(r"Total:\s+([\d.]+) secs", text)
    if total is None:
        raise ValueError(f"not a hey summary: {text[:300]!r}")
    seconds = float(total.group(1))
    statuses = {}
    for line in _section(text, "Status code distribution"):
        m = re.match(r"\[(\d+)\]\s+(\d+) responses", line)
        if m:
            statuses[m.group(1)] = int(m.group(2))
    error_lines, transport_errors = [], 0
    for line in _section(text, "Error distribution"):
        m = re.match(r"\[(\d+)\]\s+(.*)", line)
        if m:
            transport_errors += int(m.group(1))
            error_lines.append(line)
    percentiles = {}
    for line in _section(text, "Latency distribution"):
        m = re.match(r"(\d+)% in ([\d.]+) secs", line)
        if m:
            percentiles[int(m.group(1))] = float(m.group(2)) * 1000
    ok = sum(n for code, n in statuses.items() if code.startswith("2"))
    errors = sum(statuses.values()) - ok + transport_errors
    return HeyResult(seconds, ok, errors, ok / seconds if seconds else 0.0, percentiles.get(50),
                     percentiles.get(99), statuses, error_lines, round(cpu_seconds, 3))
