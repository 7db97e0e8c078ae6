"""Liveness and readiness, open even when a token guards /v1/*."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel

from shared.service.problems import Problem, problem_responses

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: str


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is up and answering."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses=problem_responses(503))
async def readyz(request: Request) -> Health:
    """Weights loaded, verified and warmed up; 503 before that (and while shutting down)."""
    if request.app.state.drain.draining:
        raise Problem(503, "not-ready", "shutting down", headers={"Retry-After": "1"})
    runtime = request.app.state.runtime
    if not runtime.ready:
        raise Problem(503, "not-ready", runtime.not_ready_reason, headers={"Retry-After": "1"})
    return Health(status="ready")
