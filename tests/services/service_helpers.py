"""Small helpers the service tests share (imported by name: this folder is on sys.path under pytest)."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import numpy as np
import torch

from aelink.training.train import TrainOptions, train
from shared.codec.config import ModelConfig
from shared.service.images import pixels_to_png

OCTET, PROBLEM = "application/octet-stream", "application/problem+json"
TOKEN = "test-token-5f1c"  # what the session's guarded encoder requires


def png(img: np.ndarray) -> bytes:
    return pixels_to_png(img)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def assert_problem(r: httpx.Response, status: int, *words: str) -> dict:
    """A problem-details answer with this status whose detail mentions every word."""
    assert r.status_code == status, f"expected {status}, got {r.status_code}: {r.text[:500]}"
    assert r.headers["content-type"].startswith(PROBLEM), r.headers["content-type"]
    body = r.json()
    assert body["status"] == status and body["type"].startswith("urn:aelink:problem:")
    assert body["title"] and body["detail"]
    for w in words:
        assert w.lower() in body["detail"].lower(), f"{w!r} not in {body['detail']!r}"
    return body


def encode_raw(enc: httpx.Client, images: np.ndarray, fmt: str = "f32", binary: bool = True) -> httpx.Response:
    r = enc.post("/v1/encode", params={"format": fmt}, content=np.ascontiguousarray(images, np.uint8).tobytes(),
                 headers={"Content-Type": OCTET, "Accept": OCTET if binary else "application/json"})
    assert r.status_code == 200, r.text
    return r


def decode_raw(dec: httpx.Client, codes: bytes) -> np.ndarray:
    r = dec.post("/v1/decode", content=codes, headers={"Content-Type": OCTET, "Accept": OCTET})
    assert r.status_code == 200, r.text
    return np.frombuffer(r.content, np.uint8).reshape(-1, 28, 28)


def train_tiny(config: ModelConfig, root: Path, data_dir: Path) -> Path:
    """A tiny model trained one thread for one epoch on 1,024 real images, into root/<name>; returns root."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(config, TrainOptions(out=root / config.name, epochs=1, train_subset=1024, test_subset=128,
                                   data_dir=str(data_dir), progress=False), log=lambda _: None)
    finally:
        torch.set_num_threads(threads)
    return root
