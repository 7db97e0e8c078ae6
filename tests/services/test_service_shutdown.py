"""Graceful shutdown over real HTTP: SIGTERM during a stream of requests loses none.

Senders post real digits to a real encoder process until its port refuses them. Every request must get
a 200 or, once the listener is closed, a refused connection: a reset, a cut answer or a 5xx is a lost
request. /readyz must say 503 during the drain, the listener must stay open for the whole drain, and a
request still uploading when the listener closes must be answered. Run as one process and as two
uvicorn workers (the supervisor forwards SIGTERM; each worker drains on its own).
"""

from __future__ import annotations

import signal
import sys
import threading
import time

import httpx
import numpy as np
import pytest
from conftest import service_env
from service_helpers import OCTET

from aelink.client import LocalService

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
DRAIN, TIMEOUT = 2.0, 10.0
FACTORY = [sys.executable, "-m", "uvicorn", "services.encoder.main:create_app", "--factory",
           "--timeout-graceful-shutdown", str(int(TIMEOUT))]


class Stream:
    """Threads sending requests until the port refuses, each outcome logged with its start and end."""

    def __init__(self, url: str, body: bytes) -> None:
        self.url, self.body = url, body
        self.results: list[tuple[str, float, float, str, bool]] = []  # (who, start, end, outcome, close)
        self.stop = threading.Event()
        self._lock = threading.Lock()

    def _note(self, who: str, start: float, outcome: str, close: bool = False) -> None:
        with self._lock:
            self.results.append((who, start, time.monotonic(), outcome, close))

    def _one(self, who: str, send) -> bool:
        """One request; False once the port refuses (the listener is closed)."""
        start = time.monotonic()
        try:
            r = send()
        except httpx.ConnectError:
            self._note(who, start, "refused")
            return False
        except httpx.HTTPError as e:
            self._note(who, start, f"{type(e).__name__}: {e}")
            return True
        self._note(who, start, str(r.status_code), r.headers.get("connection", "").lower() == "close")
        return True

    def encode(self, client: httpx.Client | None = None):
        post = client.post if client is not None else httpx.post
        return lambda: post(f"{self.url}/v1/encode", params={"format": "f32"}, content=self.body,
                            headers={"Content-Type": OCTET}, timeout=30)

    def sender(self, who: str, keep_alive: bool) -> None:
        with httpx.Client(timeout=30) as client:
            send = self.encode(client if keep_alive else None)
            while not self.stop.is_set() and self._one(who, send):
                pass

    def readiness(self) -> None:
        while not self.stop.is_set() and self._one("readyz", lambda: httpx.get(f"{self.url}/readyz", timeout=5)):
            time.sleep(0.05)

    def slow_upload(self, seconds: float) -> None:
        """A request whose body arrives over `seconds`: in flight while the listener closes."""
        chunks = np.array_split(np.frombuffer(self.body, np.uint8), 8)

        def body():
            for chunk in chunks:
                time.sleep(seconds / len(chunks))
                yield chunk.tobytes()

        self._one("slow", lambda: httpx.post(
            f"{self.url}/v1/encode", params={"format": "f32"}, content=body(), timeout=30,
            headers={"Content-Type": OCTET, "Content-Length": str(len(self.body))}))

    def of(self, who: str) -> list[tuple[str, float, float, str, bool]]:
        return [r for r in self.results if r[0] == who]


def all_ready(url: str, times: int = 20) -> None:
    """/readyz 200 on `times` fresh connections in a row: with several workers, each one is warm."""
    deadline, run = time.monotonic() + 60, 0
    while run < times:
        assert time.monotonic() < deadline, "the workers never all became ready"
        run = run + 1 if httpx.get(f"{url}/readyz", timeout=5).status_code == 200 else 0


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_during_a_stream_of_requests_loses_none(weights_dir, digits, workers):
    env = service_env("encoder", weights_dir, SHUTDOWN_DRAIN_SECONDS=str(DRAIN),
                      SHUTDOWN_TIMEOUT_SECONDS=str(TIMEOUT))
    command = None if workers == 1 else [*FACTORY, "--workers", str(workers)]
    svc, stream = LocalService("encoder", env=env, command=command).start(), None
    try:
        svc.wait_ready(timeout=90)
        all_ready(svc.url)
        stream = Stream(svc.url, np.ascontiguousarray(digits[:4]).tobytes())
        threads = [threading.Thread(target=stream.sender, args=(f"fresh{i}", False)) for i in range(2)]
        threads += [threading.Thread(target=stream.sender, args=("kept", True)),
                    threading.Thread(target=stream.readiness)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        t_sig = time.monotonic()
        svc.proc.send_signal(signal.SIGTERM)
        time.sleep(DRAIN - 0.5)
        slow = threading.Thread(target=stream.slow_upload, args=(1.5,))
        slow.start()
        status = svc.proc.wait(timeout=DRAIN + TIMEOUT + 10)
        stream.stop.set()
        for t in [*threads, slow]:
            t.join(timeout=30)
        log = svc.output()
    finally:
        if stream is not None:
            stream.stop.set()
        svc.stop()

    drained = t_sig + DRAIN  # the earliest the listener can close
    sent_in_drain = [r for r in stream.results if r[0] not in ("readyz", "slow") and r[1] < drained - 0.2]
    lost = [r for r in sent_in_drain if r[3] != "200"]
    assert not lost, f"requests sent before the drain ended were lost: {lost[:5]}\n{log[-3000:]}"
    after = [r for r in sent_in_drain if r[1] > t_sig + 0.2]
    assert len(after) >= 3, f"only {len(after)} requests were sent during the drain"
    assert status in (0, -signal.SIGTERM), f"exit status {status}\n{log[-3000:]}"
    assert log.count("Shutting down") == workers, log[-3000:]

    refused = [r[2] for r in stream.results if r[3] == "refused"]
    assert refused, "the port never refused a connection"
    assert min(refused) >= drained, f"refused {min(refused) - t_sig:.2f}s after SIGTERM, inside the drain"
    (slow,) = stream.of("slow")
    assert slow[3] == "200", f"the request in flight when the listener closed was lost: {slow}"
    assert slow[1] < drained and slow[2] > drained + 0.5, slow
    if workers == 1:  # several workers: the supervisor holds the socket open until it exits (see README)
        assert min(refused) < slow[2], "the listener was still open when the slow upload finished"

    ready = stream.of("readyz")
    assert all(r[3] == "200" for r in ready if r[2] < t_sig), "not ready before SIGTERM"
    not_ready = [r for r in ready if r[3] == "503"]
    assert not_ready, "/readyz never said 503 during the drain"
    first_503 = min(r[1] for r in not_ready)
    assert first_503 < t_sig + 1.0, f"/readyz said 503 only {first_503 - t_sig:.2f}s after SIGTERM"
    assert not [r for r in ready if r[3] == "200" and r[1] > first_503], "/readyz went back to 200"
    flipped = min(r[2] for r in not_ready)  # by the end of the first 503 the drain had surely begun
    kept = [r for r in stream.of("kept") if r[3] == "200" and flipped < r[1] < drained]
    assert kept and all(r[4] for r in kept), "answers during the drain must say Connection: close"


def test_a_second_signal_cuts_the_drain_short(weights_dir, digits):
    env = service_env("encoder", weights_dir, SHUTDOWN_DRAIN_SECONDS="60")
    svc = LocalService("encoder", env=env).start()
    try:
        svc.wait_ready(timeout=90)
        svc.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        while httpx.get(f"{svc.url}/readyz", timeout=5).status_code != 503:
            assert time.monotonic() < deadline, "/readyz never said 503"
            time.sleep(0.05)
        r = httpx.post(f"{svc.url}/v1/encode", params={"format": "f32"}, timeout=30,
                       content=np.ascontiguousarray(digits[:1]).tobytes(), headers={"Content-Type": OCTET})
        assert r.status_code == 200, r.text  # still serving during the drain
        start = time.monotonic()
        svc.proc.send_signal(signal.SIGTERM)
        svc.proc.wait(timeout=15)
        assert time.monotonic() - start < 10, "the second SIGTERM waited for the 60 s drain"
    finally:
        svc.stop()
