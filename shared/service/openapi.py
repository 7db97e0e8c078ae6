"""OpenAPI for endpoints that read several body forms, which FastAPI cannot declare by itself."""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel

from shared.service.auth import declare_bearer
from shared.service.problems import PROBLEM_JSON

BINARY = {"schema": {"type": "string", "format": "binary", "minLength": 1}}  # empty bodies get 400


def request_body(json_model: type[BaseModel], **other: dict) -> dict:
    """`openapi_extra` describing a JSON body (from the model) beside other media types."""
    schema = json_model.model_json_schema()
    if "$defs" in schema:  # inline schemas cannot carry definitions; keep request models flat
        raise TypeError(f"{json_model.__name__} must not nest models")
    content = {"application/json": {"schema": schema}, **other}
    return {"requestBody": {"required": True, "content": content}}


def binary_response(description: str) -> dict:
    return {"content": {"application/octet-stream": BINARY}, "description": description}


def problems_as_problem_json(app: FastAPI) -> None:
    """List error bodies under application/problem+json, the type they are sent with, and declare the
    bearer token only when the service has one (the schema is built once, after the settings are read).

    FastAPI files a `responses=` model under application/json; move it, once, when the schema is built.
    """
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            for ops in build()["paths"].values():
                for op in ops.values():
                    for status, response in op.get("responses", {}).items():
                        content = response.get("content", {})
                        if status[0] in "45" and PROBLEM_JSON in content and "application/json" in content:
                            content[PROBLEM_JSON] = content.pop("application/json")
            if app.state.settings.token is not None:
                declare_bearer(app.openapi_schema)
        return app.openapi_schema

    app.openapi = openapi
