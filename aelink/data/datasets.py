"""MNIST-format datasets: IDX parsing, SHA-256 verification, download, preprocessing, noise.

Files are read from a data directory given by `--data-dir` or `AELINK_DATA_DIR`, gzipped or not.
Every check names the file it failed on; no numpy traceback reaches the user.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

IMAGES_MAGIC, LABELS_MAGIC = 0x00000803, 0x00000801  # ubyte data, 3 dims / 1 dim


class DataError(ValueError):
    """A dataset file is missing, truncated, corrupt or not what it claims. The message names it."""


@dataclass(frozen=True)
class Dataset:
    name: str
    files: dict[str, str]  # role -> file name without .gz
    sha256: dict[str, str]  # file name -> SHA-256 of the decompressed bytes
    counts: dict[str, int]  # split -> number of images
    mirrors: tuple[str, ...]
    system_dir: str | None = None  # where a distribution package installs it


_FILES = {
    "train-images": "train-images-idx3-ubyte",
    "train-labels": "train-labels-idx1-ubyte",
    "test-images": "t10k-images-idx3-ubyte",
    "test-labels": "t10k-labels-idx1-ubyte",
}

DATASETS: dict[str, Dataset] = {
    "mnist": Dataset(
        "mnist",
        _FILES,
        {
            "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
            "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        },
        {"train": 60000, "test": 10000},
        (
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
    ),
    "fashion-mnist": Dataset(
        "fashion-mnist",
        _FILES,
        {
            "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
            "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        },
        {"train": 60000, "test": 10000},
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        system_dir="/usr/share/datasets/fashion-mnist",  # Debian's dataset-fashion-mnist
    ),
}


def dataset(name: str) -> Dataset:
    try:
        return DATASETS[name]
    except KeyError:
        raise DataError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}") from None


def resolve_data_dir(data_dir: str | Path | None, name: str = "mnist") -> Path:
    """The flag wins, then AELINK_DATA_DIR, then a distribution's copy, then ./data/<name>."""
    if data_dir:
        return Path(data_dir)
    if os.environ.get("AELINK_DATA_DIR"):
        return Path(os.environ["AELINK_DATA_DIR"])
    system = dataset(name).system_dir
    if system and Path(system).is_dir():
        return Path(system)
    return Path("data") / name


def find_file(data_dir: Path, stem: str) -> Path | None:
    for candidate in (data_dir / stem, data_dir / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def read_bytes(path: Path) -> bytes:
    """The decompressed content of a file, gzipped or not."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: corrupt or truncated gzip data ({e})") from None


def parse_idx(data: bytes, source: str, *, images: bool) -> np.ndarray:
    """Parse IDX bytes: images as (N, rows, cols) uint8 or labels as (N,) uint8, every size checked."""
    want_magic, ndim = (IMAGES_MAGIC, 3) if images else (LABELS_MAGIC, 1)
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{source}: {len(data)} bytes, too short for an IDX header ({header} bytes)")
    magic = struct.unpack(">I", data[:4])[0]
    if magic != want_magic:
        what = "image" if images else "label"
        raise DataError(f"{source}: magic number 0x{magic:08x}, expected 0x{want_magic:08x} ({what} file)")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    if images and dims[1:] != (28, 28):
        raise DataError(f"{source}: images are {dims[1]}x{dims[2]}, expected 28x28")
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(data) != expected:
        raise DataError(
            f"{source}: {len(data)} bytes, but its header ({' x '.join(map(str, dims))}) needs {expected}"
            + (" (truncated)" if len(data) < expected else " (trailing data)")
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def verify_sha256(data: bytes, source: str, expected: str) -> None:
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise DataError(f"{source}: SHA-256 {actual} of its content does not match the known {expected}")


def load_split(
    split: str, data_dir: str | Path | None = None, name: str = "mnist", *, verify: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Images (N,28,28) uint8 and labels (N,) uint8 of the 'train' or 'test' split."""
    if split not in ("train", "test"):
        raise ValueError("split must be 'train' or 'test'")
    ds, root = dataset(name), resolve_data_dir(data_dir, name)
    arrays = []
    for kind in ("images", "labels"):
        stem = ds.files[f"{split}-{kind}"]
        path = find_file(root, stem)
        if path is None:
            raise DataError(
                f"{root / stem}[.gz]: missing; run `aelink data fetch --data-dir {root}`"
                " or point --data-dir / AELINK_DATA_DIR at the folder that holds it"
            )
        data = read_bytes(path)
        arrays.append(parse_idx(data, str(path), images=kind == "images"))
        if verify:  # after parsing, so a truncated file gets the clearer message
            verify_sha256(data, str(path), ds.sha256[stem])
    images, labels = arrays
    if len(images) != len(labels):
        raise DataError(f"{root}: {len(images)} {split} images but {len(labels)} labels")
    if len(images) != ds.counts[split]:
        raise DataError(f"{root}: {len(images)} {split} images, expected {ds.counts[split]}")
    return images, labels


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N,28,28) -> float32 (N,1,28,28) in [0,1], as in our spec (pixels / 255)."""
    return torch.tensor(images, dtype=torch.float32).unsqueeze(1).div_(255.0)  # copies: the source may be read-only


def add_noise(x: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """clip(x + sigma * N(0,1), 0, 1), drawn from the given seeded generator."""
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return (x + sigma * noise).clamp_(0.0, 1.0)
