"""Optional bearer token for /v1/*; health, readiness and metrics stay open for probes and scrapers.

The OpenAPI document declares the bearer scheme only when a token is set (`declare_bearer`): a service
without one must not tell clients a token is required.
"""

from __future__ import annotations

import secrets

from fastapi import Request

from shared.service.problems import PROBLEM_JSON, Problem

SCHEME = "bearerAuth"


async def require_token(request: Request) -> None:
    token = request.app.state.settings.token
    if token is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise Problem(401, "unauthorized", "this service needs 'Authorization: Bearer <token>'",
                      headers={"WWW-Authenticate": 'Bearer realm="aelink"'})
    # compare_digest: the time taken must not leak how much of a guess was right
    if not secrets.compare_digest(given.strip().encode(), token.get_secret_value().encode()):
        raise Problem(401, "unauthorized", "the bearer token is not valid",
                      headers={"WWW-Authenticate": 'Bearer realm="aelink"'})


def declare_bearer(schema: dict) -> None:
    """Mark every /v1/* operation as needing the bearer token, in an OpenAPI document."""
    schema.setdefault("components", {}).setdefault("securitySchemes", {})[SCHEME] = {
        "type": "http", "scheme": "bearer", "description": "the service's token (its TOKEN setting)"}
    for path, ops in schema["paths"].items():
        if path.startswith("/v1/"):
            for op in ops.values():
                op["security"] = [{SCHEME: []}]
                op.setdefault("responses", {}).setdefault("401", {
                    "description": "Unauthorized: the token is missing or not valid",
                    "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}}})
