"""Graceful shutdown: on SIGTERM, /readyz turns 503 while requests are still served for a drain period.

Kubernetes sends SIGTERM and removes the pod from the Service's endpoints at the same time, but the
removal takes a few seconds to reach every node and load balancer; until then new requests still
arrive. So the first SIGTERM only starts a drain: /readyz answers 503, every answer says
`Connection: close` (keep-alive clients move to other pods), and after SHUTDOWN_DRAIN_SECONDS the
signal is handed to uvicorn, which stops accepting connections and lets in-flight requests finish
(up to SHUTDOWN_TIMEOUT_SECONDS, uvicorn's timeout_graceful_shutdown).

The hook sits in the app's lifespan (shared.service.app), not in a uvicorn.Server subclass: uvicorn's `--workers`
supervisor runs a stock Server in each worker and forwards SIGTERM to all of them, and each worker's
lifespan installs its own drain. A second SIGTERM, or SIGINT (Ctrl-C), stops without waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("aelink.service")


class Drain:
    """One process's shutdown state: `draining` turns true on the first SIGTERM."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.draining = False
        self._signalled = False  # set inside the signal handler; `draining` is set on the event loop

    @contextlib.contextmanager
    def on_sigterm(self) -> Iterator[None]:
        """While inside, SIGTERM starts a drain and reaches the server's own handler only after it."""
        server_handler = signal.getsignal(signal.SIGTERM)
        # Only the main thread receives signals; a server run in a thread (some tests) or with no
        # handler of its own (SIG_DFL: nothing would stop it after the drain) keeps its behaviour.
        if threading.current_thread() is not threading.main_thread() or not callable(server_handler):
            yield
            return
        loop = asyncio.get_running_loop()

        def handler(sig: int, frame: Any) -> None:
            if self._signalled or self.seconds <= 0:
                server_handler(sig, frame)  # a second SIGTERM (or no drain): stop now
                return
            self._signalled = True
            loop.call_soon_threadsafe(self._start, server_handler, sig)

        signal.signal(signal.SIGTERM, handler)
        try:
            yield
        finally:
            if signal.getsignal(signal.SIGTERM) is handler:
                signal.signal(signal.SIGTERM, server_handler)

    def _start(self, server_handler: Callable[[int, Any], Any], sig: int) -> None:
        self.draining = True
        log.info("SIGTERM: /readyz says 503; serving for %gs more, then finishing in-flight requests",
                 self.seconds)
        asyncio.get_running_loop().call_later(self.seconds, server_handler, sig, None)


class CloseWhileDraining:
    """Adds `Connection: close` to answers sent during the drain, so clients reconnect elsewhere."""

    def __init__(self, app: ASGIApp, drain: Drain) -> None:
        self.app, self.drain = app, drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_closing(message: Message) -> None:
            if message["type"] == "http.response.start" and self.drain.draining:
                message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive, send_closing)
