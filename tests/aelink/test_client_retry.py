"""The client rides out overload and restarts: 503 + Retry-After and refused connections are retried
with bounded backoff, then fail with a clear error (a tiny real HTTP server on loopback answers 503)."""

from __future__ import annotations

import contextlib
import http.server
import threading
import time

import pytest

from aelink.client import CodecClient, free_port
from aelink.http_calls import RetryPolicy, ServiceError, retry_after


class Busy(http.server.BaseHTTPRequestHandler):
    """Always 503 with problem details and the server's Retry-After; counts what it was sent."""

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.server.hits.append(time.monotonic())
        body = b'{"type": "urn:aelink:problem:overloaded", "title": "Service Unavailable", "status": 503,' \
               b' "detail": "queue full"}'
        self.send_response(503)
        self.send_header("Content-Type", "application/problem+json")
        if self.server.retry_after is not None:
            self.send_header("Retry-After", self.server.retry_after)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def busy_server(retry_after: str | None):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Busy)
    server.hits, server.retry_after = [], retry_after
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.hits
    finally:
        server.shutdown()
        server.server_close()


def test_503_is_retried_the_policy_s_number_of_times_then_fails_clearly():
    policy = RetryPolicy(attempts=4, within=10)
    with busy_server("0") as (url, hits), CodecClient(url, url, retry=policy) as c, pytest.raises(ServiceError) as e:
        c.decode(b"codes")
    assert len(hits) == 4
    msg = str(e.value)
    assert "gave up after 4 attempts" in msg and "503" in msg and "queue full" in msg and "/v1/decode" in msg


def test_retry_after_is_honoured():
    policy = RetryPolicy(attempts=3, within=10)
    with busy_server("1") as (url, hits), CodecClient(url, url, retry=policy) as c, pytest.raises(ServiceError):
        c.decode(b"codes")
    assert len(hits) == 3
    gaps = [b - a for a, b in zip(hits, hits[1:], strict=False)]
    assert all(1.0 <= g < 2.0 for g in gaps), gaps


def test_a_retry_after_past_the_time_bound_fails_at_once():
    with busy_server("30") as (url, hits), CodecClient(url, url, retry=RetryPolicy(attempts=5, within=2)) as c:
        start = time.monotonic()
        with pytest.raises(ServiceError, match="gave up after 1 attempt in"):
            c.decode(b"codes")
    assert len(hits) == 1 and time.monotonic() - start < 1.5


def test_refused_connections_are_retried_within_the_time_bound():
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with CodecClient(url, url, retry=RetryPolicy(attempts=100, within=1.0, base=0.05, cap=0.2)) as c:
        start = time.monotonic()
        with pytest.raises(ServiceError, match="ConnectError") as e:
            c.model()
    elapsed = time.monotonic() - start
    assert 0.7 < elapsed < 2.0, elapsed
    assert "attempts in" in str(e.value)


def test_without_retries_the_first_error_is_final():
    with (busy_server("0") as (url, hits), CodecClient(url, url, retry=RetryPolicy(attempts=1)) as c,
          pytest.raises(ServiceError, match="gave up after 1 attempt")):
        c.decode(b"codes")
    assert len(hits) == 1


def test_retry_after_forms():
    import httpx

    assert retry_after(httpx.Response(503, headers={"Retry-After": "3"})) == 3.0
    assert retry_after(httpx.Response(503)) is None
    assert retry_after(httpx.Response(503, headers={"Retry-After": "soon"})) is None
    later = retry_after(httpx.Response(503, headers={"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"}))
    assert later is not None and later > 1e8


# --- a real send through real services, the decoder killed and started again in the middle ----------------


def test_a_decoder_restarted_in_the_middle_of_a_send_loses_no_image(tmp_path, data_dir):
    import numpy as np

    from aelink.client import LocalService, local_services, send
    from aelink.data.datasets import load_split
    from shared.service.images import pixels_to_png

    digits = load_split("test", data_dir)[0][:600]
    paths = []
    for i, img in enumerate(digits):
        paths.append(tmp_path / f"{i:03d}.png")
        paths[-1].write_bytes(pixels_to_png(img))
    restarted: list[LocalService] = []
    with local_services() as (encoder, decoder):

        class Restarting(CodecClient):
            """Between the send's 2nd and 3rd decode requests the receiver's process dies (SIGKILL) and
            a new one starts on its port: the 3rd request finds nothing listening until it is up."""

            decodes = 0

            def decode(self, codes: bytes):
                self.decodes += 1
                if self.decodes == 3:
                    decoder.proc.kill()
                    decoder.proc.wait()
                    restarted.append(LocalService("decoder", port=decoder.port).start())
                return super().decode(codes)

        try:
            with Restarting(encoder.url, decoder.url) as client:
                result = send(client, paths, batch=100)  # 6 requests to each service
            assert client.decodes == 6 and len(restarted) == 1
            assert restarted[0].proc.poll() is None  # the new receiver decoded the last four batches
            assert result.recons.shape == (600, 28, 28)
            assert result.psnr().mean() > 20
            with CodecClient(encoder.url, decoder.url) as client:  # each image as a lone request decodes it
                alone = np.concatenate([client.decode(client.encode_files([(p.name, p.read_bytes())])[0])
                                        for p in paths[::50]])
            assert np.array_equal(result.recons[::50], alone)
        finally:
            for s in restarted:
                s.stop()
