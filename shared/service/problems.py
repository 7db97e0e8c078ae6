"""RFC 9457 problem details: every error leaves as application/problem+json saying what was wrong."""

from __future__ import annotations

import logging
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException

PROBLEM_JSON = "application/problem+json"
MAX_ERRORS = 20
log = logging.getLogger("aelink.service")


class ProblemDetails(BaseModel):
    """An error, as RFC 9457 describes it."""

    type: str = Field(description="URI naming the kind of problem", examples=["urn:aelink:problem:bad-codes"])
    title: str = Field(description="short summary of the kind of problem")
    status: int = Field(description="the HTTP status code")
    detail: str = Field(description="what was wrong with this request")
    instance: str | None = Field(None, description="the request path")
    errors: list[dict] | None = Field(None, description="field errors, for validation problems")


class Problem(Exception):
    """Raise anywhere in a request to answer with a problem-details body."""

    def __init__(self, status: int, slug: str, detail: str, *, title: str | None = None,
                 headers: dict[str, str] | None = None, errors: list[dict] | None = None) -> None:
        super().__init__(detail)
        self.status, self.slug, self.detail = status, slug, detail
        self.title = title or HTTPStatus(status).phrase
        self.headers, self.errors = headers, errors


def problem_response(request_path: str | None, p: Problem) -> JSONResponse:
    body = ProblemDetails(type=f"urn:aelink:problem:{p.slug}", title=p.title, status=p.status,
                          detail=p.detail, instance=request_path, errors=p.errors)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=p.status,
                        media_type=PROBLEM_JSON, headers=p.headers)


async def _on_problem(request: Request, exc: Problem) -> JSONResponse:
    return problem_response(request.url.path, exc)


async def _on_http(request: Request, exc: HTTPException) -> JSONResponse:
    slug = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "-")
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    return problem_response(request.url.path, Problem(exc.status_code, slug, detail, headers=exc.headers))


def validation_problem(raw_errors: list, what: str = "request") -> Problem:
    """Pydantic errors -> one 422 problem listing each field (400 when the JSON itself is broken)."""
    # A bad 28x28 array can raise hundreds of errors: the first few say enough.
    errors = [{"loc": [str(x) for x in e.get("loc", ())], "msg": e.get("msg", "")} for e in raw_errors[:MAX_ERRORS]]
    detail = "; ".join(f"{'.'.join(e['loc']) or 'body'}: {e['msg']}" for e in errors[:5]) or f"invalid {what}"
    if len(raw_errors) > 5:
        detail += f" (and {len(raw_errors) - 5} more)"
    if any(e.get("type") == "json_invalid" for e in raw_errors):
        return Problem(400, "malformed-json", f"the body is not valid JSON ({detail})")
    return Problem(422, "invalid-request", f"invalid {what}: {detail}", errors=errors)


def parse_json(model: type[BaseModel], body: bytes, what: str):
    """Validate a JSON body against `model`, raising a Problem that names each bad field."""
    try:
        return model.model_validate_json(body)
    except ValidationError as e:
        raise validation_problem(e.errors(include_url=False), what) from None


async def _on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    return problem_response(request.url.path, validation_problem(list(exc.errors())))


async def _on_anything(request: Request, exc: Exception) -> JSONResponse:
    # The last resort: a bug, not the client's fault. Log it whole; answer without internals.
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(request.url.path, Problem(500, "internal-error", "unexpected server error"))


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(HTTPException, _on_http)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(Exception, _on_anything)


def problem_responses(*statuses: int) -> dict[int | str, dict]:
    """The `responses=` entry that documents these error statuses in OpenAPI."""
    return {s: {"model": ProblemDetails, "content": {PROBLEM_JSON: {}}, "description": HTTPStatus(s).phrase}
            for s in statuses}
