"""Download a dataset's IDX files from public mirrors, verify them, and write them atomically.

A download is written to a temporary file beside its destination, checked (gzip, IDX header and
sizes, SHA-256 of the decompressed bytes) and only then renamed into place, so a failed or corrupt
download leaves nothing half-written.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import httpx

from aelink.data.datasets import DataError, dataset, find_file, parse_idx, read_bytes, verify_sha256

MIRRORS_ENV = "AELINK_MIRRORS"  # comma-separated base URLs, tried in order, instead of the defaults


def mirrors_for(name: str, override: list[str] | None = None) -> list[str]:
    urls = override or [u for u in os.environ.get(MIRRORS_ENV, "").split(",") if u.strip()]
    urls = urls or list(dataset(name).mirrors)
    return [u.strip().rstrip("/") + "/" for u in urls]


def check_file(path: Path, stem: str, name: str) -> None:
    """Parse and verify one local file; raises DataError naming it."""
    data = read_bytes(path)
    parse_idx(data, str(path), images="images" in stem)
    verify_sha256(data, str(path), dataset(name).sha256[stem])


def download(url: str, dest: Path, stem: str, name: str, timeout: float) -> None:
    """Fetch url into a temporary file in dest's folder, verify it, then rename it to dest."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, httpx.stream("GET", url, timeout=timeout,
                                                      follow_redirects=True) as response:
            if response.status_code != 200:
                raise DataError(f"{url}: HTTP {response.status_code}")
            for chunk in response.iter_bytes():
                out.write(chunk)
        check_file(tmp, stem, name)
        tmp.replace(dest)
    except httpx.HTTPError as e:
        raise DataError(f"{url}: {type(e).__name__}: {e}") from None
    except DataError as e:  # name the URL, not the temporary file
        raise DataError(str(e).replace(str(tmp), url)) from None
    finally:
        tmp.unlink(missing_ok=True)


def fetch(data_dir: Path, name: str = "mnist", mirrors: list[str] | None = None, *,
          force: bool = False, timeout: float = 60.0, log: Callable[[str], None] = print) -> None:
    """Make data_dir hold the four verified files, downloading what is missing (or bad, with force)."""
    ds = dataset(name)
    for stem in ds.files.values():
        local = find_file(data_dir, stem)
        if local is not None:
            try:
                check_file(local, stem, name)
                log(f"ok       {local}")
                continue
            except DataError as e:
                if not force:
                    raise DataError(f"{e}; rerun with --force to download it again") from None
                log(f"bad      {local}: downloading it again")
        data_dir.mkdir(parents=True, exist_ok=True)
        errors = []
        for base in mirrors_for(name, mirrors):
            try:
                download(base + stem + ".gz", data_dir / f"{stem}.gz", stem, name, timeout)
            except DataError as e:
                errors.append(str(e))
                continue
            if local is not None and local != data_dir / f"{stem}.gz":
                local.unlink()  # the bad uncompressed copy would shadow the good download
            log(f"fetched  {data_dir / stem}.gz from {base}")
            break
        else:
            raise DataError(f"could not fetch {stem}.gz from any mirror:\n  " + "\n  ".join(errors))
