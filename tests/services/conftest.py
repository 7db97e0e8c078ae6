"""Real services for the integration tests: uvicorn subprocesses on free loopback ports, one set per session.

Weights default to the committed `weights/` folder; AELINK_TEST_WEIGHTS_DIR points elsewhere (e.g. dev
weights while the committed ones are being trained). Quality thresholds only hold for the committed
weights: tests ask `committed_weights` before asserting them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from service_helpers import TOKEN

from aelink.client import LocalService
from aelink.data.datasets import load_split

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "weights"
LIMITS = {"MAX_IMAGES": "256", "MAX_REQUEST_BYTES": str(1024 * 1024), "THREADS": "1"}


@pytest.fixture(scope="session")
def weights_dir() -> Path:
    d = Path(os.environ.get("AELINK_TEST_WEIGHTS_DIR") or COMMITTED)
    for half in ("encoder", "decoder"):
        if not (d / "compact32" / f"{half}.safetensors").is_file():
            pytest.fail(f"no {d}/compact32/{half}.safetensors: commit the weights or set AELINK_TEST_WEIGHTS_DIR")
    return d


@pytest.fixture(scope="session")
def committed_weights(weights_dir) -> bool:
    return weights_dir.resolve() == COMMITTED.resolve()


def service_env(half: str, weights_dir: Path, **extra: str) -> dict[str, str]:
    prefix = f"AELINK_{half.upper()}_"
    values = {**LIMITS, "WEIGHTS_DIR": str(weights_dir), "MODEL": "compact32", **extra}
    return {prefix + k: v for k, v in values.items()}


class Services:
    """The session's running services: plain encoder and decoder, and an encoder that needs a token."""

    def __init__(self, weights_dir: Path) -> None:
        self.encoder = LocalService("encoder", env=service_env("encoder", weights_dir))
        self.decoder = LocalService("decoder", env=service_env("decoder", weights_dir))
        # Started through `aelink serve`, so the CLI entry point is exercised too.
        self.guarded = LocalService("encoder", env=service_env("encoder", weights_dir, TOKEN=TOKEN),
                                    command=[sys.executable, "-m", "aelink.cli", "serve", "encoder"])
        self.all = [self.encoder, self.decoder, self.guarded]


@pytest.fixture(scope="session")
def services(weights_dir):
    s = Services(weights_dir)
    try:
        for svc in s.all:
            svc.start()  # all start before any is waited for: their start-ups overlap
        for svc in s.all:
            svc.wait_ready(timeout=90)
        yield s
    finally:
        for svc in s.all:
            svc.stop()


@pytest.fixture(scope="session")
def enc(services):
    with httpx.Client(base_url=services.encoder.url, timeout=30) as c:
        yield c


@pytest.fixture(scope="session")
def dec(services):
    with httpx.Client(base_url=services.decoder.url, timeout=30) as c:
        yield c


@pytest.fixture(scope="session")
def digits(data_dir) -> np.ndarray:
    """The first 200 real MNIST test digits, uint8 (200,28,28)."""
    return load_split("test", data_dir)[0][:200].copy()
