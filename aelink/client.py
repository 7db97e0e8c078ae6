"""Talking to the services over HTTP: the codec client, local service processes, and `send`.

`aelink send` and `aelink demo` use this; so do the integration tests. It never loads weights: the
sender's and receiver's work happens in their own processes, and only codes cross between them.
"""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

from aelink.http_calls import DEFAULT_RETRY, RetryPolicy, ServiceError, call
from shared.codec import wire
from shared.service.images import png_to_pixels, sniff, to_uint8

OCTET = "application/octet-stream"
MEDIA = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
HALVES = ("encoder", "decoder")


class CodecClient:
    """The sender's and receiver's endpoints, with codes kept in the binary form between them."""

    def __init__(self, encoder_url: str, decoder_url: str, token: str | None = None, timeout: float = 60,
                 retry: RetryPolicy = DEFAULT_RETRY) -> None:
        self.retry = retry  # encode and decode are idempotent: busy or restarting services are retried
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.encoder = httpx.Client(base_url=encoder_url.rstrip("/"), headers=headers, timeout=timeout)
        self.decoder = httpx.Client(base_url=decoder_url.rstrip("/"), headers=headers, timeout=timeout)

    def __enter__(self) -> CodecClient:
        return self

    def __exit__(self, *exc) -> None:
        self.encoder.close()
        self.decoder.close()

    def model(self, half: str = "encoder") -> dict:
        client = self.encoder if half == "encoder" else self.decoder
        return call(client, "GET", "/v1/model", self.retry).json()

    def encode_files(self, files: list[tuple[str, bytes]], fmt: str | None = None) -> tuple[bytes, list[bytes], list[bool]]:
        """Image files (name, bytes), sent as they are -> the binary form of their codes (fmt None: the
        model's default), the 28x28 PNGs the encoder made them from, and whether each was fitted."""
        parts = [("file", (name, data, MEDIA[sniff(data) or "PNG"])) for name, data in files]
        params = {"return_inputs": "true", **({"format": fmt} if fmt else {})}
        body = call(self.encoder, "POST", "/v1/encode", self.retry, params=params, files=parts,
                    headers={"Accept": "application/json"}).json()
        # The same codes as the binary answer: only the wire fields, in the form that travels on.
        codes = wire.to_binary(wire.from_json({k: body[k] for k in ("version", "fingerprint", "format", "shape",
                                                                    "codes")}))
        return codes, [base64.b64decode(t) for t in body["inputs"]], body["fitted"]

    def decode(self, codes: bytes) -> np.ndarray:
        """The binary form of codes -> uint8 (N,28,28) images."""
        r = call(self.decoder, "POST", "/v1/decode", self.retry, content=codes,
                  headers={"Content-Type": OCTET, "Accept": OCTET})
        return np.frombuffer(r.content, dtype=np.uint8).reshape(-1, 28, 28)


# --- local service processes -------------------------------------------------------------------------


def free_port() -> int:
    """A port free on loopback right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalService:
    """One service run as a real uvicorn process on loopback, its output kept in a log file."""

    def __init__(self, half: str, *, env: dict[str, str] | None = None, port: int | None = None,
                 command: list[str] | None = None, inherit_env: bool = True) -> None:
        if half not in HALVES:
            raise ValueError(f"half must be one of {HALVES}")
        self.half, self.port = half, port or free_port()
        self.command = command or [sys.executable, "-m", f"services.{half}"]  # `--host/--port` follow
        self.url = f"http://127.0.0.1:{self.port}"
        base = os.environ if inherit_env else {}  # False: exactly `env`, as a container image would run it
        # No drain on stop: nothing routes traffic to a local process that a pause would let finish.
        prefix = f"AELINK_{half.upper()}_"
        self.env = {**base, f"{prefix}THREADS": "1", f"{prefix}SHUTDOWN_DRAIN_SECONDS": "0", **(env or {})}
        self.log = Path(tempfile.mkstemp(prefix=f"aelink-{half}-", suffix=".log")[1])
        self.proc: subprocess.Popen | None = None

    def start(self, cwd: Path | None = None, flags: bool = True) -> LocalService:
        """Start the process; flags=False leaves host and port to the environment (as an image does)."""
        cmd = [*self.command, *(["--host", "127.0.0.1", "--port", str(self.port)] if flags else [])]
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=cwd)
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60) -> LocalService:
        """Poll /readyz until it answers 200; fail early, with the log, if the process dies."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                code = None if self.proc is None else self.proc.returncode
                raise ServiceError(f"the {self.half} service exited (status {code}):\n{self.output()[-2000:]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return self
            time.sleep(0.1)
        raise ServiceError(f"the {self.half} service was not ready after {timeout:g}s:\n{self.output()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.unlink(missing_ok=True)


@contextlib.contextmanager
def local_services(env: dict[str, str] | None = None, timeout: float = 60):
    """Both services on free loopback ports, ready; stopped on exit. Yields (encoder, decoder)."""
    services = [LocalService(h, env=env) for h in HALVES]
    try:
        for s in services:
            s.start()  # both start before either is waited for: their start-ups overlap
        for s in services:
            s.wait_ready(timeout)
        yield tuple(services)
    finally:
        for s in services:
            s.stop()


# --- send: files through both services ---------------------------------------------------------------


@dataclass
class SendResult:
    names: list[str]
    originals: np.ndarray  # uint8 (N,28,28)
    recons: np.ndarray  # uint8 (N,28,28)
    png_bytes: list[int]
    wire_bytes: int  # the binary codes of all requests, headers included
    code_bytes: float  # one code without the header (on average, with its varint, when variable)
    model: dict
    fmt: str
    fitted: list[bool] | None = None  # per image: the encoder fitted it to MNIST form

    def psnr(self) -> np.ndarray:
        from shared.service.images import psnr

        return psnr(self.originals, self.recons)

    def summary(self) -> dict:
        n, p = len(self.names), self.psnr()
        return {
            "model": self.model["name"], "fingerprint": self.model["fingerprint"], "format": self.fmt,
            "images": n, "png_bytes": sum(self.png_bytes), "wire_bytes": self.wire_bytes,
            "png_bytes_per_image": sum(self.png_bytes) / n, "wire_bytes_per_image": self.wire_bytes / n,
            "code_bytes": self.code_bytes, "ratio": sum(self.png_bytes) / self.wire_bytes,
            "psnr_mean_db": float(p.mean()), "psnr_min_db": float(p.min()), "psnr_max_db": float(p.max()),
            "per_image": [{"file": f, "png_bytes": b, "psnr_db": round(float(q), 2), "fitted": fit}
                          for f, b, q, fit in zip(self.names, self.png_bytes, p, self.fitted or [False] * n,
                                                  strict=True)],
        }


def read_images(paths: list[Path]) -> list[tuple[str, bytes]]:
    """The files' names and bytes, as they are: the encoder reads them (and fits them to MNIST form); a
    file that is not a PNG, JPEG or WebP raises naming it."""
    files = []
    for path in paths:
        data = Path(path).read_bytes()
        if sniff(data) is None:
            raise ValueError(f"{path} is not a PNG, JPEG or WebP file")
        files.append((Path(path).name, data))
    return files


def send(client: CodecClient, paths: list[Path], fmt: str | None = None, batch: int = 256) -> SendResult:
    """Encode the files over HTTP, decode the codes over HTTP; only the codes travel between.
    fmt None: the model's default format (rc for entropy-coded models, else f32)."""
    if not paths:
        raise ValueError("no images to send")
    files = read_images(paths)
    model = client.model("encoder")
    fmt = fmt or model["formats"][0]
    recons, wire_bytes, code_bytes, inputs, fitted = [], 0, [], [], []
    for i in range(0, len(files), batch):
        codes, pngs, fits = client.encode_files(files[i:i + batch], fmt)
        wire_bytes += len(codes)
        code_bytes += wire.from_binary(codes).framed_lengths
        recons.append(client.decode(codes))
        inputs += pngs
        fitted += fits
    # Scored against what the sender encoded; a 28x28 PNG taken as it is counts its own file's bytes.
    originals = to_uint8(np.stack([png_to_pixels(p) for p in inputs]))
    png_bytes = [len(p) if f or sniff(d) != "PNG" else len(d) for (_, d), p, f in zip(files, inputs, fitted, strict=True)]
    return SendResult([n for n, _ in files], originals, np.concatenate(recons), png_bytes,
                      wire_bytes, sum(code_bytes) / len(code_bytes), model, fmt, fitted)


def format_summary(s: dict) -> str:
    return "\n".join([
        f"model {s['model']} (fingerprint {s['fingerprint']}), codes as {s['format']}",
        f"images:            {s['images']}",
        f"PNG files:         {s['png_bytes']:,} bytes ({s['png_bytes_per_image']:.1f} per image)",
        f"codes on the wire: {s['wire_bytes']:,} bytes ({s['wire_bytes_per_image']:.1f} per image:"
        f" {s['code_bytes']:g} per code plus the header)",
        f"ratio:             the codes are {s['ratio']:.2f}x smaller than the PNGs",
        f"PSNR:              mean {s['psnr_mean_db']:.2f} dB (min {s['psnr_min_db']:.2f}, max {s['psnr_max_db']:.2f})",
        *([f"fitted to MNIST form by the sender: {fits} of {s['images']} (scored against the 28x28 it encoded)"]
          if (fits := sum(i.get("fitted", False) for i in s["per_image"])) else []),
    ])


def write_outputs(result: SendResult, out: Path) -> dict:
    """Reconstructions as PNGs, the figure (originals over reconstructions) and summary.json."""
    import json

    from aelink.figure import save_figure
    from shared.service.images import pixels_to_png

    recon_dir = out / "reconstructions"
    recon_dir.mkdir(parents=True, exist_ok=True)
    for i, (name, img) in enumerate(zip(result.names, result.recons, strict=True)):
        (recon_dir / f"{i:03d}_{Path(name).stem}.png").write_bytes(pixels_to_png(img))
    save_figure([result.originals, result.recons], ["originals", "reconstructions"], out / "figure.png")
    summary = result.summary()
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "summary.txt").write_text(format_summary(summary) + "\n")
    return summary
