"""A no-op FastAPI pair for `aelink bench serve`: the ceiling of the framework and server on this machine.

Same framework (FastAPI), same server (uvicorn, access log and log level as the services'), same routes
and body forms as the real pair, but the work is nil: /v1/encode and /v1/decode echo the body back.
Run as `python -m uvicorn --factory aelink.measure.noop_app:create_app --host ... --port ...`.
"""

from __future__ import annotations

from fastapi import FastAPI, Request, Response

OCTET = "application/octet-stream"


def create_app() -> FastAPI:
    app = FastAPI(title="aelink no-op pair")

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> dict:
        return {"status": "ready"}

    async def echo(request: Request) -> Response:
        return Response(await request.body(), media_type=OCTET)

    app.add_api_route("/v1/encode", echo, methods=["POST"])
    app.add_api_route("/v1/decode", echo, methods=["POST"])
    return app
