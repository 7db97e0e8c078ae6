"""Dynamic batching on real services: concurrent requests of mixed formats and body forms get exactly
the answers they get alone, a bad request fails alone, a full queue answers 503 at once, a flood of
oversized binary bodies leaves /healthz answering, and a short load ends without errors."""

from __future__ import annotations

import json
import os
import random
import struct
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from service_helpers import OCTET, assert_problem, b64, png

from aelink.client import LocalService, free_port
from services.encoder.settings import EncoderSettings
from shared.codec import wire
from shared.service.auth import SCHEME
from shared.service.settings import SettingsError, load_settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
MODEL = "rd10"  # entropy coded, so rc, f32 and u8 codes all mix in one batch; 16 values a code: quick
# A long wait, so that concurrent requests surely share batches; small batches, so that they split too.
BATCHING = {"MAX_BATCH": "8", "BATCH_WAIT_MS": "30", "MAX_REQUEST_BYTES": str(4 * 1024 * 1024),
            "MAX_IMAGES": "64", "THREADS": "1"}


def start(half: str, weights_dir, **extra: str) -> LocalService:
    env = {**BATCHING, "MODEL": MODEL, "WEIGHTS_DIR": str(weights_dir), **extra}
    return LocalService(half, env={f"AELINK_{half.upper()}_{k}": v for k, v in env.items()}).start()


@pytest.fixture(scope="module")
def pair(weights_dir):
    services = [start("encoder", weights_dir), start("decoder", weights_dir)]
    try:
        for s in services:
            s.wait_ready(timeout=90)
        yield services
    finally:
        for s in services:
            s.stop()


def samples(client: httpx.Client) -> dict[str, float]:
    text = client.get("/metrics").text
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            key = s.name + "".join(f"{{{k}={v}}}" for k, v in sorted(s.labels.items()) if k == "le")
            out[key] = out.get(key, 0.0) + s.value
    return out


def encode_requests(digits: np.ndarray) -> list[dict]:
    """Encode requests in every format and body form, one malformed among them."""
    reqs = []
    for i, fmt in enumerate(["rc", "f32", "u8"] * 4):
        imgs = digits[3 * i:3 * i + 1 + i % 3]
        accept = OCTET if i % 2 else "application/json"
        form = i % 4
        if form == 0:
            body = {"content": imgs.tobytes(), "headers": {"Content-Type": OCTET}}
        elif form == 1:
            body = {"content": png(imgs[0]), "headers": {"Content-Type": "image/png"}}
        elif form == 2:
            body = {"json": {"images": [b64(png(im)) for im in imgs]}}
        else:
            body = {"files": [("file", (f"{j}.png", png(im), "image/png")) for j, im in enumerate(imgs)]}
        reqs.append({"url": "/v1/encode", "params": {"format": fmt}, **body,
                     "headers": {**body.get("headers", {}), "Accept": accept}})
    reqs.append({"url": "/v1/encode", "content": b"\x89PNG\r\n\x1a\nbroken", "headers": {"Content-Type": "image/png"}})
    return reqs


def send(client: httpx.Client, req: dict) -> tuple[int, str, bytes]:
    kwargs = {k: v for k, v in req.items() if k != "url"}
    r = client.post(req["url"], **kwargs)
    return r.status_code, r.headers.get("content-type", ""), r.content


def alone_then_together(url: str, reqs: list[dict], rounds: int = 3) -> tuple[list, list]:
    with httpx.Client(base_url=url, timeout=60) as c:
        alone = [send(c, r) for r in reqs]
    order = [i for _ in range(rounds) for i in range(len(reqs))]
    random.Random(0).shuffle(order)
    local = threading.local()

    def one(i: int):
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=url, timeout=60)
        return i, send(local.client, reqs[i])

    with ThreadPoolExecutor(24) as pool:
        together = list(pool.map(one, order))
    return alone, together


def test_concurrent_requests_get_exactly_their_lone_answers(pair, digits):
    enc, dec = pair
    reqs = encode_requests(digits)
    with httpx.Client(base_url=enc.url, timeout=30) as c:
        before = samples(c)
    alone, together = alone_then_together(enc.url, reqs)
    for i, got in together:
        assert got == alone[i], f"encode request {i} answered differently in a batch"
    assert all(a[0] == 200 for a in alone[:-1])
    assert alone[-1][0] == 422 and b"bad-image" in alone[-1][2]  # its batch-mates still succeeded
    with httpx.Client(base_url=enc.url, timeout=30) as c:
        after = samples(c)
    calls = after["aelink_model_batch_size_count"] - before["aelink_model_batch_size_count"]
    images = after["aelink_model_batch_size_sum"] - before["aelink_model_batch_size_sum"]
    assert calls < images, "concurrent requests never shared a model call"
    assert after["aelink_model_batch_size_bucket{le=8.0}"] == after["aelink_model_batch_size_count"]  # MAX_BATCH
    assert after["aelink_queue_wait_seconds_count"] > before["aelink_queue_wait_seconds_count"]

    # Decode the codes just made, in every format, in both body forms and all three answers.
    codes = [(wire.from_binary(body) if ctype == OCTET else wire.from_json(json.loads(body)))
             for status, ctype, body in alone[:-1]]
    dreqs = []
    for i, cs in enumerate(codes):
        accept = [OCTET, "application/json", "image/png"][i % 3]
        if accept == "image/png":
            cs = wire.Codes(cs.fingerprint, cs.format, cs.shape, cs.payloads[:1])
        if i % 2:
            dreqs.append({"url": "/v1/decode", "content": wire.to_binary(cs),
                          "headers": {"Content-Type": OCTET, "Accept": accept}})
        else:
            dreqs.append({"url": "/v1/decode", "json": wire.to_json(cs), "headers": {"Accept": accept}})
    good = wire.from_binary(wire.to_binary(codes[0]))
    damaged = wire.Codes(good.fingerprint, good.format, good.shape, (good.payloads[0][:1] + b"\xff" * 40,))
    dreqs.append({"url": "/v1/decode", "content": wire.to_binary(damaged), "headers": {"Content-Type": OCTET}})
    alone, together = alone_then_together(dec.url, dreqs)
    for i, got in together:
        assert got == alone[i], f"decode request {i} answered differently in a batch"
    assert all(a[0] == 200 for a in alone[:-1])
    assert alone[-1][0] == 422 and b"undecodable-code" in alone[-1][2]


def test_a_full_queue_answers_503_with_retry_after_at_once(weights_dir, digits):
    # One image may wait; the first waits 1 s for company (a slow batch), so the next finds it full.
    dec_codes = None
    enc = start("encoder", weights_dir, MAX_QUEUE="1", BATCH_WAIT_MS="1000", MAX_BATCH="64")
    try:
        enc.wait_ready(timeout=90)
        body = {"content": digits[:1].tobytes(), "headers": {"Content-Type": OCTET, "Accept": OCTET}}
        with ThreadPoolExecutor(1) as pool, httpx.Client(base_url=enc.url, timeout=30) as c:
            first = pool.submit(lambda: httpx.post(f"{enc.url}/v1/encode", timeout=30, **body))
            time.sleep(0.3)  # the first is queued by now
            t = time.perf_counter()
            r = c.post("/v1/encode", **body)
            took = time.perf_counter() - t
            problem = assert_problem(r, 503, "MAX_QUEUE")
            assert problem["type"].endswith(":overloaded") and int(r.headers["Retry-After"]) >= 1
            assert took < 0.4, f"the refusal took {took:.2f}s; it should not wait for the queue"
            dec_codes = first.result().content
        assert dec_codes and dec_codes[:4] == wire.MAGIC  # the queued request was answered
    finally:
        enc.stop()


def flood_body(count: int = 2_000_000) -> bytes:
    """A maximal binary decode body: a header claiming two million one-byte rc codes, and them."""
    head = wire.HEADER.pack(wire.MAGIC, wire.VERSION, wire.FORMATS["rc"].id, 1, 0, bytes(8), count, 0)
    return head + struct.pack("<I", 16) + b"\x01\x00" * count


def test_a_flood_of_oversized_bodies_leaves_healthz_answering(pair):
    _, dec = pair
    body = flood_body()[: 4 * 1024 * 1024]
    stop, answers, lat = threading.Event(), [], []

    def flood():
        with httpx.Client(base_url=dec.url, timeout=30) as c:
            while not stop.is_set():
                answers.append(c.post("/v1/decode", content=body, headers={"Content-Type": OCTET}).status_code)

    with ThreadPoolExecutor(6) as pool:
        for _ in range(6):
            pool.submit(flood)
        with httpx.Client(base_url=dec.url, timeout=30) as c:
            t_end = time.monotonic() + 3
            while time.monotonic() < t_end:
                t = time.perf_counter()
                assert c.get("/healthz").status_code == 200
                lat.append(time.perf_counter() - t)
                time.sleep(0.02)
        stop.set()
    assert answers and set(answers) == {413}
    assert max(lat) < 1.0, f"/healthz took up to {max(lat):.2f}s under the flood"


def test_a_short_load_ends_without_errors(pair, digits):
    enc, dec = pair
    errors, done = [], []
    t_end = time.monotonic() + 3

    def client(k: int):
        with httpx.Client(timeout=30) as c:
            i = k
            while time.monotonic() < t_end:
                img = digits[i % len(digits)][None]
                r = c.post(f"{enc.url}/v1/encode", content=img.tobytes(),
                           headers={"Content-Type": OCTET, "Accept": OCTET})
                d = c.post(f"{dec.url}/v1/decode", content=r.content,
                           headers={"Content-Type": OCTET, "Accept": OCTET}) if r.status_code == 200 else r
                (done if d.status_code == 200 and len(d.content) == 784 else errors).append(d.status_code)
                i += 16

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(client, range(16)))
    assert not errors and len(done) > 16


def test_two_workers_serve_and_count_metrics_across_processes(weights_dir, digits):
    enc = start("encoder", weights_dir, WORKERS="2")
    try:
        enc.wait_ready(timeout=90)
        n = 24
        for i in range(n):  # a fresh connection each: the workers share the requests
            r = httpx.post(f"{enc.url}/v1/encode", content=digits[i:i + 1].tobytes(),
                           headers={"Content-Type": OCTET, "Accept": OCTET, "Connection": "close"})
            assert r.status_code == 200
        for _ in range(6):  # whichever worker answers the scrape sums all of them
            with httpx.Client(base_url=enc.url, headers={"Connection": "close"}) as c:
                s = samples(c)
            assert s["aelink_images_total"] == n
            assert s["aelink_requests_total"] >= n
    finally:
        enc.stop()


def test_two_workers_refuse_bad_weights_with_one_line(tmp_path):
    (tmp_path / "compact32").mkdir()
    bad = tmp_path / "compact32" / "encoder.safetensors"
    bad.write_bytes(b"not a safetensors file")
    cmd = [sys.executable, "-m", "services.encoder", "--port", str(free_port()), "--weights-dir", str(tmp_path),
           "--model", "compact32"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "AELINK_ENCODER_WORKERS": "2"})
    assert proc.returncode == 3, proc.stderr
    assert f"cannot start the encoder service: {bad}" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("variable, value", [("MAX_BATCH", "0"), ("BATCH_WAIT_MS", "-1"), ("MAX_QUEUE", "0"),
                                             ("WORKERS", "0"), ("BATCH_WAIT_MS", "soon")])
def test_bad_batching_settings_fail_naming_the_variable(monkeypatch, variable, value):
    monkeypatch.setenv(f"AELINK_ENCODER_{variable}", value)
    with pytest.raises(SettingsError, match=f"AELINK_ENCODER_{variable}"):
        load_settings(EncoderSettings)


def test_the_schema_asks_for_a_token_only_when_one_is_set(enc, services):
    # Without a token the guard is not installed at all: nothing to check per request, nothing to claim.
    plain = enc.get("/openapi.json").json()["paths"]["/v1/encode"]["post"]
    guarded = httpx.get(f"{services.guarded.url}/openapi.json").json()["paths"]["/v1/encode"]["post"]
    assert "security" not in plain
    assert guarded["security"] == [{SCHEME: []}]
