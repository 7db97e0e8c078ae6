"""`aelink bench soak`: C clients send single digits through the real pair for S seconds, and every answer is
checked byte for byte against the answer the same digit gets when it is sent alone.

`aelink bench serve` measures speed with `hey`, which cannot look at bodies; this is its correctness side
under the same kind of load. Each client loops: encode one test digit (binary body), compare the code with
the lone request's, decode that code, compare the image with the lone request's. Nothing is retried: a
503, a refused connection or a timeout is an error, and the digit it carried is counted as lost.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from dataclasses import dataclass, field

import httpx
import numpy as np

from aelink.measure.bench_serve import OCTET, pair, post
from shared.service.settings import DEFAULT_WEIGHTS

HEADERS = {"Content-Type": OCTET, "Accept": OCTET}


@dataclass
class Tally:
    sent: int = 0  # digits a client started to send
    returned: int = 0  # digits whose reconstruction came back
    errors: int = 0  # non-200 answers and failed requests
    wrong_codes: int = 0  # a code unlike the lone request's
    wrong_images: int = 0  # a reconstruction unlike the lone request's
    seconds: list[float] = field(default_factory=list)  # each round trip's latency
    problems: list[str] = field(default_factory=list)  # the first few errors, to show

    def problem(self, text: str) -> None:
        self.errors += 1
        if len(self.problems) < 5:
            self.problems.append(text)


def lone_answers(enc_url: str, dec_url: str, images: np.ndarray) -> tuple[list[bytes], list[bytes]]:
    """Each digit sent alone, one request at a time: its code and its reconstruction."""
    codes, recons = [], []
    with httpx.Client(timeout=60) as c:
        for image in images:
            codes.append(post(c, f"{enc_url}/v1/encode", image.tobytes()))
            recons.append(post(c, f"{dec_url}/v1/decode", codes[-1]))
    return codes, recons


async def one_client(client: httpx.AsyncClient, urls: tuple[str, str], bodies: list[bytes], expected: tuple,
                     first: int, stride: int, stop_at: float, tally: Tally) -> None:
    codes, recons = expected
    i = first
    while time.perf_counter() < stop_at:
        k = i % len(bodies)
        i += stride
        tally.sent += 1
        start = time.perf_counter()
        try:
            r = await client.post(urls[0], content=bodies[k], headers=HEADERS)
            if r.status_code != 200:
                tally.problem(f"encode {r.status_code}: {r.text[:200]}")
                continue
            tally.wrong_codes += r.content != codes[k]
            r = await client.post(urls[1], content=r.content, headers=HEADERS)
            if r.status_code != 200:
                tally.problem(f"decode {r.status_code}: {r.text[:200]}")
                continue
        except httpx.HTTPError as e:
            tally.problem(f"{type(e).__name__}: {e}")
            continue
        tally.seconds.append(time.perf_counter() - start)
        tally.returned += 1
        tally.wrong_images += r.content != recons[k]


async def drive(urls: tuple[str, str], bodies: list[bytes], expected: tuple, clients: int, seconds: float) -> Tally:
    tally = Tally()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        stop_at = time.perf_counter() + seconds
        await asyncio.gather(*(one_client(client, urls, bodies, expected, n, clients, stop_at, tally)
                               for n in range(clients)))
    return tally


def soak_model(model: str, images: np.ndarray, clients: int, seconds: float, weights_dir=DEFAULT_WEIGHTS) -> dict:
    with pair(model, weights_dir) as (enc, dec):
        urls = (f"{enc.url}/v1/encode", f"{dec.url}/v1/decode")
        expected = lone_answers(enc.url, dec.url, images)
        start = time.perf_counter()
        tally = asyncio.run(drive(urls, [im.tobytes() for im in images], expected, clients, seconds))
        elapsed = time.perf_counter() - start
    ms = sorted(s * 1e3 for s in tally.seconds)
    return {"model": model, "clients": clients, "seconds": elapsed, "digits": len(images),
            "sent": tally.sent, "returned": tally.returned, "lost": tally.sent - tally.returned,
            "errors": tally.errors, "wrong_codes": tally.wrong_codes, "wrong_images": tally.wrong_images,
            "round_trips_per_s": tally.returned / elapsed,
            "p50_ms": statistics.median(ms) if ms else None,
            "p99_ms": ms[min(len(ms) - 1, int(len(ms) * 0.99))] if ms else None,
            "problems": tally.problems, "load_after": os.getloadavg()[0]}


def passed(row: dict) -> bool:
    return row["returned"] > 0 and not (row["lost"] or row["errors"] or row["wrong_codes"] or row["wrong_images"])


def format_rows(rows: list[dict]) -> str:
    lines = [f"{'model':<10} {'clients':>7} {'seconds':>7} {'round trips':>11} {'per s':>6} {'p50 ms':>7}"
             f" {'p99 ms':>7} {'errors':>6} {'lost':>5} {'codes != lone':>13} {'images != lone':>14}  verdict"]
    for r in rows:
        lines.append(f"{r['model']:<10} {r['clients']:>7} {r['seconds']:>7.1f} {r['returned']:>11,} "
                     f"{r['round_trips_per_s']:>6,.0f} {r['p50_ms'] or 0:>7.1f} {r['p99_ms'] or 0:>7.1f}"
                     f" {r['errors']:>6} {r['lost']:>5} {r['wrong_codes']:>13} {r['wrong_images']:>14}"
                     f"  {'pass' if passed(r) else 'FAIL'}")
        lines += [f"  {p}" for p in r["problems"]]
    return "\n".join(lines)
