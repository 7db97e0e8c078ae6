import gzip
import struct

import numpy as np
import pytest
import torch

from aelink.data.datasets import DataError, add_noise, load_split, parse_idx, read_bytes, to_tensor


def idx_images(n=3, rows=28, cols=28, magic=0x803) -> bytes:
    pixels = np.arange(n * rows * cols, dtype=np.uint8)
    return struct.pack(">IIII", magic, n, rows, cols) + pixels.tobytes()


def idx_labels(n=3) -> bytes:
    return struct.pack(">II", 0x801, n) + bytes(range(n))


def test_parse_good_files():
    images = parse_idx(idx_images(), "x", images=True)
    assert images.shape == (3, 28, 28) and images.dtype == np.uint8
    labels = parse_idx(idx_labels(), "y", images=False)
    assert labels.tolist() == [0, 1, 2]


@pytest.mark.parametrize("data, images, message", [
    (b"", True, "too short"),
    (idx_images()[:10], True, "too short"),
    (idx_images()[:-1], True, "truncated"),
    (idx_images() + b"\0", True, "trailing data"),
    (idx_images(magic=0x801), True, "magic number"),
    (idx_labels(), True, "too short"),
    (idx_images(rows=32, cols=32), True, "expected 28x28"),
    (idx_images(), False, "magic number"),
    (idx_labels()[:-2], False, "truncated"),
])
def test_parse_broken_files_name_the_file(data, images, message):
    with pytest.raises(DataError, match=message) as err:
        parse_idx(data, "/some/file-idx3-ubyte", images=images)
    assert "/some/file-idx3-ubyte" in str(err.value)


def test_gzip_truncated_or_corrupt(tmp_path):
    good = gzip.compress(idx_images())
    (tmp_path / "a.gz").write_bytes(good[: len(good) // 2])
    (tmp_path / "b.gz").write_bytes(good[:20] + b"\xff" * 40 + good[60:])
    for name in ("a.gz", "b.gz"):
        with pytest.raises(DataError, match="gzip") as err:
            read_bytes(tmp_path / name)
        assert name in str(err.value)
    (tmp_path / "c.gz").write_bytes(good)
    (tmp_path / "raw").write_bytes(idx_images())
    assert read_bytes(tmp_path / "c.gz") == read_bytes(tmp_path / "raw")


def test_real_test_split(data_dir):
    images, labels = load_split("test", data_dir)
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
    assert labels.max() == 9 and images.max() == 255


def test_checksum_mismatch_is_caught(tmp_path, data_dir):
    for stem in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        data = bytearray(read_bytes(data_dir / f"{stem}.gz"))
        if "images" in stem:
            data[5000] ^= 0xFF  # one flipped pixel: the header and sizes still parse
        (tmp_path / stem).write_bytes(bytes(data))
    with pytest.raises(DataError, match="SHA-256") as err:
        load_split("test", tmp_path)
    assert "t10k-images-idx3-ubyte" in str(err.value)


def test_missing_file_says_how_to_get_it(tmp_path):
    with pytest.raises(DataError, match="aelink data fetch"):
        load_split("test", tmp_path)


def test_data_dir_from_environment(monkeypatch, data_dir):
    monkeypatch.setenv("AELINK_DATA_DIR", str(data_dir))
    images, _ = load_split("test")
    assert len(images) == 10000


def test_fashion_mnist_through_the_same_loader():
    from aelink.data.datasets import dataset, resolve_data_dir

    root = resolve_data_dir(dataset("fashion-mnist").system_dir, "fashion-mnist")
    if not (root / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    images, labels = load_split("test", root, "fashion-mnist")
    assert images.shape == (10000, 28, 28) and set(labels.tolist()) == set(range(10))


def test_preprocessing():
    raw = np.array([[[0, 255] * 14] * 28], dtype=np.uint8)
    x = to_tensor(raw)
    assert x.shape == (1, 1, 28, 28) and x.dtype == torch.float32
    assert x.min() == 0.0 and x.max() == 1.0


def test_noise_is_seeded_clipped_and_fresh():
    x = torch.full((64, 1, 28, 28), 0.5)
    a = add_noise(x, 0.4, torch.Generator().manual_seed(1))
    b = add_noise(x, 0.4, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)  # same seed, same noise
    g = torch.Generator().manual_seed(1)
    assert not torch.equal(add_noise(x, 0.4, g), add_noise(x, 0.4, g))  # drawn afresh per call
    assert a.min() >= 0.0 and a.max() <= 1.0
    assert 0.3 < (a - x).std().item() < 0.4  # sigma 0.4, a little less after clipping to [0,1]
