"""Prometheus metrics: requests, latency, images and batch sizes, in a registry of the app's own.

A registry per app (not the global one) lets tests and tools build several apps in one process.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


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
        self.model = Gauge("aelink_model_info", "The loaded model (value 1)",
                           ["service", "model", "fingerprint"], registry=r)

    def observe_batch(self, n: int) -> None:
        self.images.labels(self.service).inc(n)
        self.batch.labels(self.service).observe(n)

    def set_model(self, name: str, fingerprint: str) -> None:
        self.model.labels(self.service, name, fingerprint).set(1)


class MetricsMiddleware:
    """Counts every answer, errors included, labelled by route template (bounded cardinality)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

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
            m = self.metrics
            m.requests.labels(m.service, scope["method"], route, str(status)).inc()
            m.latency.labels(m.service, route).observe(time.perf_counter() - start)


router = APIRouter(tags=["operations"])


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}})
def metrics(request: Request) -> Response:
    """Prometheus metrics: requests, latency, images and batch sizes."""
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
