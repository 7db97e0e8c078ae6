"""Optional bearer token for /v1/*; health, readiness and metrics stay open for probes and scrapers."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.service.problems import Problem

bearer = HTTPBearer(auto_error=False, description="required when the service has a token set")


async def require_token(request: Request,
                  creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
    token = request.app.state.settings.token
    if token is None:
        return
    # compare_digest: the time taken must not leak how much of a guess was right
    if creds is None or not secrets.compare_digest(creds.credentials.encode(), token.get_secret_value().encode()):
        raise Problem(401, "unauthorized", "this service needs 'Authorization: Bearer <token>'"
                      if creds is None else "the bearer token is not valid",
                      headers={"WWW-Authenticate": 'Bearer realm="aelink"'})
