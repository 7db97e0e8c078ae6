"""`aelink bench serve`: the pair as a service under load, against a no-op FastAPI pair and in process.

In one run, for each model: the halves called in process (batches of 256), the real services over HTTP
with batches of 256 (one client), C concurrent single-image clients for S seconds (the compiled load
generator `hey`, binary bodies both ways), and /healthz latency on the decoder while it is flooded with
maximal bad bodies. The no-op pair (aelink.measure.noop_app: same framework, same server, echoes the
body) answers the same single-image load: the framework's ceiling here, and proof the load generator is
not what limits the models' figures.
"""

from __future__ import annotations

import contextlib
import os
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import numpy as np
import torch

from aelink.client import HALVES, LocalService
from aelink.measure.hey import run_hey
from shared.codec import wire
from shared.codec.decoder import load_decoder
from shared.codec.encoder import load_encoder
from shared.service.images import to_uint8
from shared.service.settings import DEFAULT_WEIGHTS

OCTET = "application/octet-stream"
NOOP = "no-op"
FLOOD_BYTES = 4 * 1024 * 1024  # the services' default MAX_REQUEST_BYTES: the largest body they read
NOOP_COMMAND = [sys.executable, "-m", "uvicorn", "--factory", "aelink.measure.noop_app:create_app",
                "--log-level", "info", "--no-server-header"]  # the services' own uvicorn settings


@dataclass(frozen=True)
class Options:
    models: tuple[str, ...] = ("compact32", "rd64")
    concurrency: int = 64  # single-image clients in flight
    seconds: float = 10.0  # each single-image point, and the flood
    timed: float = 3.0  # each in-process and HTTP batched point (at least)
    batch: int = 256  # images per batched request (the services' MAX_IMAGES)
    healthz_gets: int = 300  # sequential GETs of /healthz during the flood (at most)
    flood_clients: int = 8  # bad bodies in flight during the flood
    weights_dir: Path = DEFAULT_WEIGHTS


QUICK = {"seconds": 1.0, "timed": 0.3, "healthz_gets": 50}  # `--quick`: a second or so per point


def per_second(fn: Callable[[], object], items: int, seconds: float) -> float:
    """Items per second of calling fn repeatedly for at least `seconds`, after 3 calls and a third as long
    untimed (the first calls of a shape are slow)."""
    warm_until = time.perf_counter() + seconds / 3
    for _ in range(3):
        fn()
    while time.perf_counter() < warm_until:
        fn()
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return calls * items / elapsed


class Halves:
    """Both halves of a model in this process, doing what the services do between body and answer."""

    def __init__(self, weights_dir: Path, model: str) -> None:
        self.encoder, meta = load_encoder(weights_dir / model / "encoder.safetensors")
        self.decoder, _ = load_decoder(weights_dir / model / "decoder.safetensors")
        self.config, self.fingerprint = meta.config, meta.fingerprint
        self.format = next(n for n, f in wire.FORMATS.items() if f.variable) if self.config.entropy_coded else "f32"

    @torch.inference_mode()
    def encode(self, images: np.ndarray) -> bytes:
        """uint8 (N,28,28) -> the binary form of their codes in the model's default format."""
        x = torch.from_numpy(images.astype(np.float32) / 255.0)[:, None]
        if self.config.entropy_coded:
            codes = wire.Codes(self.fingerprint, self.format, tuple(self.config.code_shape),
                               tuple(self.encoder.compress(x)))
        else:
            codes = wire.encode_codes(self.encoder(x).numpy(), self.fingerprint, self.format)
        return wire.to_binary(codes)

    @torch.inference_mode()
    def decode(self, data: bytes) -> bytes:
        """The binary form of codes -> the images as N x 784 uint8 bytes."""
        codes = wire.from_binary(data)
        if self.config.entropy_coded:
            latents = self.decoder.decompress(list(codes.payloads))
        else:
            latents = torch.from_numpy(wire.decode_codes(codes))
        return to_uint8(self.decoder(latents).numpy()).tobytes()


def flood_body(shape: tuple[int, ...], fingerprint: str) -> bytes:
    """The worst body a decoder can be sent: MAX_REQUEST_BYTES of a variable-length format, its header
    claiming about two million one-byte codes (each a one-byte varint and one byte)."""
    fmt = next(f for f in wire.FORMATS.values() if f.variable)
    count = (FLOOD_BYTES - wire.header_size(len(shape))) // 2
    header = wire.HEADER.pack(wire.MAGIC, wire.VERSION, fmt.id, len(shape), 0, bytes.fromhex(fingerprint), count, 0)
    return header + struct.pack(f"<{len(shape)}I", *shape) + b"\x01\x00" * count


@contextlib.contextmanager
def pair(model: str | None, weights_dir: Path, timeout: float = 120):
    """The real pair (model given) or the no-op pair (None) on free loopback ports; stopped on exit."""
    if model is None:
        services = [LocalService(h, command=NOOP_COMMAND) for h in HALVES]
    else:
        env = {f"AELINK_{h.upper()}_{k}": v for h in HALVES
               for k, v in (("MODEL", model), ("WEIGHTS_DIR", str(weights_dir)))}
        services = [LocalService(h, env=env) for h in HALVES]
    try:
        for s in services:
            s.start()
        for s in services:
            s.wait_ready(timeout)
        yield services
    finally:
        for s in services:
            s.stop()


def post(client: httpx.Client, url: str, body: bytes) -> bytes:
    r = client.post(url, content=body, headers={"Content-Type": OCTET, "Accept": OCTET})
    if r.status_code != 200:
        raise RuntimeError(f"POST {url} -> {r.status_code}: {r.text[:300]}")
    return r.content


def batched(enc_url: str, dec_url: str, raw: bytes, codes: bytes | None, items: int, seconds: float) -> dict:
    """One client, batches of `items` images: encode images/s, decode images/s, and what came back."""
    with httpx.Client(timeout=120) as c:
        got_codes = post(c, f"{enc_url}/v1/encode", raw)
        codes = codes if codes is not None else got_codes
        images = post(c, f"{dec_url}/v1/decode", codes)
        enc = per_second(lambda: post(c, f"{enc_url}/v1/encode", raw), items, seconds)
        dec = per_second(lambda: post(c, f"{dec_url}/v1/decode", codes), items, seconds)
    return {"encode": enc, "decode": dec, "codes": got_codes, "images": images}


def single(url: str, body: Path, opts: Options) -> dict:
    return run_hey(url, concurrency=opts.concurrency, seconds=opts.seconds, method="POST", body=body,
                   content_type=OCTET, accept=OCTET).as_dict()


def healthz_under_flood(dec_url: str, body: Path, opts: Options) -> dict:
    """Sequential GETs of /healthz (one keep-alive client) while `flood_clients` bad bodies are in flight."""
    seconds = max(opts.seconds, 3.0)
    with ThreadPoolExecutor(1) as pool:
        flood = pool.submit(run_hey, f"{dec_url}/v1/decode", concurrency=opts.flood_clients, seconds=seconds,
                            method="POST", body=body, content_type=OCTET, timeout=60)
        time.sleep(0.5)  # the flood's bodies are on their way
        ms, failed, end = [], 0, time.monotonic() + seconds - 1.0
        with httpx.Client(timeout=60) as c:
            while len(ms) < opts.healthz_gets and time.monotonic() < end:
                start = time.perf_counter()
                try:
                    ok = c.get(f"{dec_url}/healthz").status_code == 200
                except httpx.HTTPError:
                    ok = False
                ms.append((time.perf_counter() - start) * 1000)
                failed += not ok
        answered = flood.result()
    return {"gets": len(ms), "failed": failed, "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)), "max_ms": max(ms), "flood_seconds": seconds,
            "flood_clients": opts.flood_clients, "flood_body_bytes": FLOOD_BYTES,
            "flood_answers": answered.statuses, "flood_transport_errors": answered.error_lines}


def bench_model(model: str, images: np.ndarray, opts: Options, tmp: Path) -> tuple[list[dict], dict, dict]:
    """Rows (encode, decode) for one model, its /healthz-under-flood figures, and the bodies it used."""
    torch.set_num_threads(1)  # as the services' THREADS default
    halves = Halves(opts.weights_dir, model)
    codes = halves.encode(images)
    inproc = {"encode": per_second(lambda: halves.encode(images), len(images), opts.timed),
              "decode": per_second(lambda: halves.decode(codes), len(images), opts.timed)}
    with pair(model, opts.weights_dir) as (enc, dec):
        http = batched(enc.url, dec.url, images.tobytes(), None, len(images), opts.timed)
        bodies = {"encode": tmp / f"{model}-image.raw", "decode": tmp / f"{model}-code.bin"}
        bodies["encode"].write_bytes(images[:1].tobytes())
        with httpx.Client(timeout=60) as c:
            bodies["decode"].write_bytes(post(c, f"{enc.url}/v1/encode", images[:1].tobytes()))
        hey = {"encode": single(f"{enc.url}/v1/encode", bodies["encode"], opts),
               "decode": single(f"{dec.url}/v1/decode", bodies["decode"], opts)}
        flood_path = tmp / f"{model}-flood.bin"
        flood_path.write_bytes(flood_body(tuple(halves.config.code_shape), halves.fingerprint))
        flood = healthz_under_flood(dec.url, flood_path, opts)
    same = http["images"] == halves.decode(http["codes"])  # the service decodes as the halves do
    rows = [{"target": model, "half": h, "in_process_per_s": inproc[h], "http_batched_per_s": http[h],
             "batched_matches_in_process": same, "single": hey[h]} for h in ("encode", "decode")]
    return rows, {"target": model, **flood}, {**bodies, "batch_codes": http["codes"]}


def bench_noop(images: np.ndarray, bodies: dict, opts: Options) -> list[dict]:
    """The no-op pair under the same load and the same bodies (the first model's)."""
    with pair(None, opts.weights_dir) as (enc, dec):
        http = batched(enc.url, dec.url, images.tobytes(), bodies["batch_codes"], len(images), opts.timed)
        hey = {"encode": single(f"{enc.url}/v1/encode", bodies["encode"], opts),
               "decode": single(f"{dec.url}/v1/decode", bodies["decode"], opts)}
    return [{"target": NOOP, "half": h, "in_process_per_s": None, "http_batched_per_s": http[h],
             "batched_matches_in_process": None, "single": hey[h]} for h in ("encode", "decode")]


def add_ratios(rows: list[dict]) -> None:
    noop = {r["half"]: r for r in rows if r["target"] == NOOP}
    for r in rows:
        ceiling = noop[r["half"]]["single"]["per_second"]
        r["single_vs_noop"] = r["single"]["per_second"] / ceiling if ceiling else None
        inproc = r["in_process_per_s"]
        r["batched_vs_in_process"] = r["http_batched_per_s"] / inproc if inproc else None


def round_trips(rows: list[dict]) -> list[dict]:
    """Encode then decode, per image: 1 / (1/encode + 1/decode), in process and over HTTP batched."""
    out = []
    for model in dict.fromkeys(r["target"] for r in rows if r["target"] != NOOP):
        e, d = (next(r for r in rows if r["target"] == model and r["half"] == h) for h in ("encode", "decode"))
        inproc = 1 / (1 / e["in_process_per_s"] + 1 / d["in_process_per_s"])
        http = 1 / (1 / e["http_batched_per_s"] + 1 / d["http_batched_per_s"])
        out.append({"target": model, "in_process_per_s": inproc, "http_batched_per_s": http, "ratio": http / inproc})
    return out


def bench_serve(images: np.ndarray, opts: Options) -> dict:
    load_before = os.getloadavg()
    rows, floods = [], []
    with tempfile.TemporaryDirectory(prefix="aelink-bench-serve-") as tmp:
        first = None
        for model in opts.models:
            model_rows, flood, bodies = bench_model(model, images, opts, Path(tmp))
            rows += model_rows
            floods.append(flood)
            first = first or bodies
        rows += bench_noop(images, first, opts)
    add_ratios(rows)
    return {"options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(opts).items()},
            "machine": {"cpus": os.cpu_count(), "load_before": load_before, "load_after": os.getloadavg()},
            "rows": rows, "round_trip": round_trips(rows), "healthz_under_flood": floods}


def _n(x: float | None, spec: str = ",.0f") -> str:
    return "-" if x is None else format(x, spec)


def _pct(x: float | None) -> str:
    return "" if x is None else f" ({x:.0%})"


def format_table(result: dict) -> str:
    o = result["options"]
    lines = [f"{o['concurrency']} single-image clients x {o['seconds']:g} s (hey, binary bodies both ways);"
             f" batches of {o['batch']} for in-process and HTTP batched; THREADS=1",
             f"{'target':<10} {'half':<7} {'in-process/s':>12} {'HTTP batched/s (vs in-process)':>31}"
             f" {'single req/s (vs no-op)':>24} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6}"]
    for r in result["rows"]:
        s = r["single"]
        lines.append(f"{r['target']:<10} {r['half']:<7} {_n(r['in_process_per_s']):>12}"
                     f" {_n(r['http_batched_per_s']) + _pct(r['batched_vs_in_process']):>31}"
                     f" {_n(s['per_second']) + _pct(r['single_vs_noop']):>24}"
                     f" {_n(s['p50_ms'], '.1f'):>7} {_n(s['p99_ms'], '.1f'):>7} {s['errors']:>6}")
    lines.append("round trip (encode then decode), images/s: " + "; ".join(
        f"{t['target']} {_n(t['in_process_per_s'])} in process, {_n(t['http_batched_per_s'])} HTTP batched"
        f" ({t['ratio']:.0%})" for t in result["round_trip"]))
    for f in result["healthz_under_flood"]:
        lines.append(f"/healthz on the {f['target']} decoder, flooded with {f['flood_body_bytes'] // 2**20} MiB bad"
                     f" bodies ({f['flood_clients']} in flight): p50 {f['p50_ms']:.1f} ms, p99 {f['p99_ms']:.1f} ms,"
                     f" max {f['max_ms']:.1f} ms over {f['gets']} GETs ({f['failed']} failed); bad bodies"
                     f" answered: {f['flood_answers']}")
    for half in ("encode", "decode"):
        noop = next(r for r in result["rows"] if r["target"] == NOOP and r["half"] == half)["single"]
        best = max((r["single_vs_noop"] or 0) for r in result["rows"] if r["target"] != NOOP and r["half"] == half)
        verdict = ("so hey is not what limits them" if best < 0.8 else
                   "close to it: hey or the framework may be what limits them")
        lines.append(f"load generator: hey drove the no-op {half} at {_n(noop['per_second'])} req/s using"
                     f" {noop['cpu_seconds'] / noop['seconds']:.2f} CPU cores; the models reach at most {best:.0%}"
                     f" of that, {verdict}")
    m = result["machine"]
    lines.append(f"machine: {m['cpus']} CPUs; load average {m['load_before'][0]:.2f} before, {m['load_after'][0]:.2f} after")
    return "\n".join(lines)
