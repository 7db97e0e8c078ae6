"""Prometheus metrics: requests, latency, images, batch sizes and queue wait, in a registry of the app's own.

A registry per app (not the global one) lets tests and tools build several apps in one process. With
several worker processes (WORKERS > 1) the server sets PROMETHEUS_MULTIPROC_DIR before the workers
start: prometheus-client then keeps each process's values in files there, and /metrics adds them up
across the processes, whichever worker answers the scrape.
"""

from __future__ import annotations

import os
import time

from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
MAX_CACHED = 256
WAIT_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("aelink_requests", "HTTP requests answered",
                                ["service", "method", "route", "status"], registry=r)
        self.latency = Histogram("aelink_request_duration_seconds", "Time to answer a request",
                                 ["service", "route"], registry=r)
        self.images = Counter("aelink_images", "Images encoded or decoded", ["service"], registry=r)
        self.batch = Histogram("aelink_batch_size", "Images or codes per request", ["service"],
                               buckets=BATCH_BUCKETS, registry=r)
        self.model_batch = Histogram("aelink_model_batch_size", "Images per model call (a dynamic batch of"
                                     " requests)", ["service"], buckets=BATCH_BUCKETS, registry=r)
        self.queue_wait = Histogram("aelink_queue_wait_seconds", "Time a request waited in the batching"
                                    " queue", ["service"], buckets=WAIT_BUCKETS, registry=r)
        self.queue_depth = Gauge("aelink_queue_depth", "Images waiting in the batching queue", ["service"],
                                 registry=r, multiprocess_mode="livesum")
        self.model = Gauge("aelink_model_info", "The loaded model (value 1)",
                           ["service", "model", "fingerprint"], registry=r, multiprocess_mode="max")
        # the labelled series the hot path touches, looked up once
        self._images, self._batch = self.images.labels(service), self.batch.labels(service)
        self._model_batch, self._wait = self.model_batch.labels(service), self.queue_wait.labels(service)
        self._depth = self.queue_depth.labels(service)

    def observe_request(self, n: int) -> None:
        """A request's n images or codes, answered."""
        self._images.inc(n)
        self._batch.observe(n)

    def observe_model_batch(self, n: int, waits: list[float]) -> None:
        """A dynamic batch of n images, taken from the queue, and how long each of its requests waited."""
        self._model_batch.observe(n)
        for w in waits:
            self._wait.observe(w)

    def set_queue_depth(self, n: int) -> None:
        self._depth.set(n)

    def collect(self) -> bytes:
        """The exposition text: this process's registry, or all workers' files in multiprocess mode."""
        if not multiprocess_dir():
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)
        return generate_latest(merged)

    def close(self) -> None:
        """At a worker's exit: its live gauges (queue depth) stop counting."""
        if multiprocess_dir():
            multiprocess.mark_process_dead(os.getpid())

    def set_model(self, name: str, fingerprint: str) -> None:
        self.model.labels(self.service, name, fingerprint).set(1)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR")


class MetricsMiddleware:
    """Counts every answer, errors included, labelled by route template (bounded cardinality)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics
        self._series: dict[tuple[str, str, int], tuple] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            # Our routes take no path parameters, so a matched path is its own template: the label set
            # stays bounded, while unmatched paths (404s, scans) all share one label.
            route = scope["path"] if scope.get("route") is not None else "unmatched"
            count, latency = self.series(scope["method"], route, status)
            count.inc()
            latency.observe(time.perf_counter() - start)

    def series(self, method: str, route: str, status: int) -> tuple:
        """The labelled counter and histogram of an answer, looked up once per kind of answer: `labels()`
        on every request was a measurable share of the event loop's time per request."""
        key = (method, route, status)
        found = self._series.get(key)
        if found is None:
            m = self.metrics
            found = (m.requests.labels(m.service, method, route, str(status)), m.latency.labels(m.service, route))
            if len(self._series) < MAX_CACHED:  # methods are the client's to choose: keep the cache bounded
                self._series[key] = found
        return found


router = APIRouter(tags=["operations"])


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}})
def metrics(request: Request) -> Response:
    """Prometheus metrics: requests, latency, images, batch sizes (per request and per model call), queue
    wait and depth; summed over all worker processes."""
    return Response(request.app.state.metrics.collect(), media_type=CONTENT_TYPE_LATEST)
