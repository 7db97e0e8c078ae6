"""HTTP calls to the services, retried while a service is busy (503, Retry-After) or restarting.

Error answers become a ServiceError that says why. Only idempotent requests go through here (encode,
decode, model info), so sending one again is always safe.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import httpx


class ServiceError(RuntimeError):
    """A service answered with an error, or could not be reached; the message says which and why."""


@dataclass(frozen=True)
class RetryPolicy:
    """How the client rides out overload (503 with Retry-After) and restarts (refused connections).

    Encoding and decoding are idempotent, so a request is simply sent again: after the service's
    Retry-After when it gives one, else after a backoff that doubles from `base` up to `cap`, with full
    jitter (a random wait up to that bound) so that many clients do not come back in step. At most
    `attempts` tries in all, and none started later than `within` seconds after the first.
    """

    attempts: int = 20
    within: float = 30.0
    base: float = 0.1
    cap: float = 5.0

    def backoff(self, retry: int) -> float:
        return random.uniform(0, min(self.cap, self.base * 2 ** retry))


NO_RETRY = RetryPolicy(attempts=1)
DEFAULT_RETRY = RetryPolicy()  # within 30 s: rides out a restart (a few seconds) or a busy spell
RETRY_STATUSES = {429, 503}  # the service is busy or not ready: the same request may succeed later
# The request did not reach the service (refused: restarting), or its connection broke before the answer
# (the process died): sending it again is safe because encode and decode change nothing.
RETRY_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError, httpx.ReadError,
                httpx.WriteError)
log = logging.getLogger("aelink.client")


def retry_after(r: httpx.Response) -> float | None:
    """Seconds the answer's Retry-After asks for (delay-seconds or an HTTP date); None without one."""
    value = r.headers.get("retry-after", "").strip()
    if value.isdigit():
        return float(value)
    with contextlib.suppress(TypeError, ValueError, IndexError):
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    return None


def call(client: httpx.Client, method: str, url: str, retry: RetryPolicy = NO_RETRY, **kw) -> httpx.Response:
    """One request, sent again per `retry` while the service is busy or unreachable; an error answer, or
    giving up, becomes a ServiceError that says why."""
    start = time.monotonic()
    for attempt in range(1, retry.attempts + 1):
        try:
            r = client.request(method, url, **kw)
        except RETRY_ERRORS as e:
            why, wait = f"{type(e).__name__}: {e}", retry.backoff(attempt - 1)
        except httpx.HTTPError as e:
            raise ServiceError(f"{method} {client.base_url}{url}: {e or type(e).__name__}") from None
        else:
            if r.status_code not in RETRY_STATUSES:
                return _check(r)
            asked = retry_after(r)
            why = f"{r.status_code} {_why(r)}"
            # the service's own estimate, plus a little jitter so that clients told the same do not return together
            wait = retry.backoff(attempt - 1) if asked is None else asked + random.uniform(0, retry.base)
        elapsed = time.monotonic() - start
        if attempt == retry.attempts or elapsed + wait > retry.within:
            tries = f"{attempt} attempt{'s' * (attempt > 1)}"
            raise ServiceError(f"{method} {client.base_url}{url}: gave up after {tries} in {elapsed:.1f} s"
                               f" (the client tries at most {retry.attempts} times within {retry.within:g} s); last: {why}")
        log.info("%s %s%s: %s; retrying in %.2f s", method, client.base_url, url, why, wait)
        time.sleep(wait)
    raise AssertionError("unreachable")


def _why(r: httpx.Response) -> str:
    try:
        body = r.json()
        return f"{body.get('title')}: {body.get('detail')}"
    except ValueError:
        return r.text[:200]


def _check(r: httpx.Response) -> httpx.Response:
    if r.status_code >= 400:
        raise ServiceError(f"{r.request.method} {r.request.url} -> {r.status_code} {_why(r)}")
    return r
