"""Fixtures shared by the unit tests: the real MNIST data directory and the committed weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from aelink.data.datasets import find_file, load_split, resolve_data_dir, to_tensor

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = ROOT / "weights"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    root = resolve_data_dir(None)
    if find_file(root, "t10k-images-idx3-ubyte") is None:
        pytest.fail(f"no MNIST files in {root}: set AELINK_DATA_DIR or run `make data`")
    return root


@pytest.fixture(scope="session")
def test_images(data_dir) -> torch.Tensor:
    """The 10,000 real test images as float32 (N,1,28,28) in [0,1]."""
    return to_tensor(load_split("test", data_dir)[0])


@pytest.fixture(scope="session")
def train_images(data_dir) -> torch.Tensor:
    return to_tensor(load_split("train", data_dir)[0])
