"""OpenAPI for endpoints that read several body forms, which FastAPI cannot declare by itself."""

from __future__ import annotations

from pydantic import BaseModel

BINARY = {"schema": {"type": "string", "format": "binary"}}


def request_body(json_model: type[BaseModel], **other: dict) -> dict:
    """`openapi_extra` describing a JSON body (from the model) beside other media types."""
    schema = json_model.model_json_schema()
    if "$defs" in schema:  # inline schemas cannot carry definitions; keep request models flat
        raise TypeError(f"{json_model.__name__} must not nest models")
    content = {"application/json": {"schema": schema}, **other}
    return {"requestBody": {"required": True, "content": content}}


def binary_response(description: str) -> dict:
    return {"content": {"application/octet-stream": BINARY}, "description": description}
