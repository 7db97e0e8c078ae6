"""`aelink data fetch` against real HTTP servers on loopback serving good and corrupted copies."""

import gzip
import http.server
import threading
from functools import partial
from pathlib import Path

import pytest

from aelink.cli import main
from aelink.data.datasets import DATASETS, load_split, read_bytes
from aelink.data.fetch import fetch

STEMS = list(DATASETS["mnist"].files.values())


@pytest.fixture(scope="module")
def mirrors(tmp_path_factory, data_dir):
    """Three mirror folders: good copies, corrupted copies (a flipped byte), truncated copies."""
    root = tmp_path_factory.mktemp("mirrors")
    for kind in ("good", "corrupt", "truncated"):
        (root / kind).mkdir()
    for stem in STEMS:
        raw = read_bytes(data_dir / f"{stem}.gz")
        flipped = bytearray(raw)
        flipped[len(raw) // 2] ^= 0x01
        good = gzip.compress(raw, compresslevel=1)
        (root / "good" / f"{stem}.gz").write_bytes(good)
        (root / "corrupt" / f"{stem}.gz").write_bytes(gzip.compress(bytes(flipped), compresslevel=1))
        (root / "truncated" / f"{stem}.gz").write_bytes(good[: len(good) // 3])
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_fetch_good_mirror(tmp_path, mirrors):
    fetch(tmp_path, mirrors=[f"{mirrors}/good/"], log=lambda s: None)
    assert leftovers(tmp_path) == sorted(f"{s}.gz" for s in STEMS)
    images, labels = load_split("train", tmp_path)
    assert images.shape == (60000, 28, 28) and labels.shape == (60000,)


@pytest.mark.parametrize("kind, message", [
    ("corrupt", "SHA-256"), ("truncated", "gzip"), ("missing", "HTTP 404"),
])
def test_bad_download_leaves_nothing(tmp_path, mirrors, kind, message):
    with pytest.raises(ValueError, match=message):
        fetch(tmp_path, mirrors=[f"{mirrors}/{kind}/"], log=lambda s: None)
    assert leftovers(tmp_path) == []  # nothing half-written, no .part files


def test_falls_back_to_the_next_mirror(tmp_path, mirrors):
    lines = []
    fetch(tmp_path, mirrors=[f"{mirrors}/corrupt/", f"{mirrors}/good/"], log=lines.append)
    assert all("/good/" in line for line in lines)
    assert len(load_split("test", tmp_path)[0]) == 10000


def test_cli_fetch_skips_verified_files_and_refuses_bad_ones(tmp_path, mirrors, capsys):
    args = ["data", "fetch", "--data-dir", str(tmp_path), "--mirror", f"{mirrors}/good/"]
    assert main(args) == 0
    assert main(args) == 0
    assert capsys.readouterr().out.count("ok ") == 4  # second run downloads nothing
    target = tmp_path / f"{STEMS[1]}.gz"
    target.write_bytes(target.read_bytes()[:-10])
    assert main(args) == 2
    assert "--force" in capsys.readouterr().err
    assert main(args + ["--force"]) == 0
    assert len(load_split("train", tmp_path)[1]) == 60000


def test_unreachable_mirror_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="could not fetch"):
        fetch(tmp_path, mirrors=["http://127.0.0.1:9/"], timeout=2, log=lambda s: None)
    assert leftovers(tmp_path) == []
