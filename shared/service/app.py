"""The app factory both services use: plumbing here, the service's own routers passed in."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from fastapi import APIRouter, Depends, FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.middleware.cors import CORSMiddleware

from shared import __version__
from shared.codec.weights import WeightsError
from shared.service import health, info, metrics, shutdown
from shared.service.auth import require_token
from shared.service.limits import BodyLimitMiddleware
from shared.service.openapi import problems_as_problem_json
from shared.service.problems import install_problem_handlers
from shared.service.runtime import HalfRuntime, HalfSpec
from shared.service.settings import ServiceSettings

log = logging.getLogger("aelink.service")


def _lifespan(runtime: HalfRuntime, stats: metrics.Metrics, drain: shutdown.Drain):
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        try:
            weights = await run_in_threadpool(runtime.load)
        except WeightsError as e:
            log.error("cannot start the %s service: %s", runtime.spec.half, e)
            raise  # uvicorn stops with a non-zero status; the message above names the file
        stats.set_model(weights.config.name, weights.fingerprint)
        runtime.start()
        # Warm up after start-up returns, so /healthz answers meanwhile and /readyz says 503 until done.
        warm = asyncio.create_task(runtime.warm())
        try:
            # After start-up: a SIGTERM during the weight load stops at once; from here it starts a drain.
            with drain.on_sigterm():
                yield
        finally:
            runtime.ready, runtime.not_ready_reason = False, "shutting down"
            await warm
            await runtime.stop()
            stats.close()

    return lifespan


def build_app(spec: HalfSpec, settings: ServiceSettings, routers: Sequence[APIRouter], *,
              title: str, description: str) -> FastAPI:
    stats = metrics.Metrics(spec.half)
    runtime = HalfRuntime(spec, settings.half_path(spec.half), settings.threads, max_batch=settings.max_batch,
                          batch_wait_ms=settings.batch_wait_ms, max_queue=settings.max_queue,
                          on_batch=stats.observe_model_batch, on_depth=stats.set_queue_depth)
    drain = shutdown.Drain(settings.shutdown_drain_seconds)  # SIGTERM: /readyz 503, drain, then stop
    app = FastAPI(title=title, description=description, version=__version__,
                  lifespan=_lifespan(runtime, stats, drain))
    app.state.settings, app.state.runtime, app.state.metrics = settings, runtime, stats
    app.state.drain = drain
    install_problem_handlers(app)
    problems_as_problem_json(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_request_bytes)
    app.add_middleware(metrics.MetricsMiddleware, metrics=stats)  # sees every answer but CORS preflights
    if settings.origins:
        # Outermost, so that error answers (413, 401, ...) also carry the headers a page needs to read them.
        app.add_middleware(CORSMiddleware, allow_origins=settings.origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type", "Accept"])
    # Without a token there is nothing to check: no dependency, so the event loop saves its per-request
    # cost (~25 us measured in-process).
    guarded = [Depends(require_token)] if settings.token is not None else []
    for router in routers:  # first: routes are matched in order, and these take the load
        app.include_router(router, prefix="/v1", dependencies=guarded)
    app.include_router(info.router, prefix="/v1", dependencies=guarded)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.add_middleware(shutdown.CloseWhileDraining, drain=drain)  # outermost: every answer of the drain
    return app
