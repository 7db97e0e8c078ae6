"""Request and response bodies of POST /v1/decode (the JSON forms; OpenAPI shows them)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from shared.codec.wire import CodesJSON


class DecodeRequest(CodesJSON):
    """Codes as the encoder returned them; extra fields (model, count, ...) are ignored."""


class DecodeResponse(BaseModel):
    model: str = Field(description="model that decoded the codes", examples=["compact32"])
    fingerprint: str = Field(description="pair fingerprint of the decoder's weights")
    count: int = Field(description="number of images (one per code, in order)")
    images: list[str] = Field(description="base64 PNG files, 28x28 8-bit grayscale")
    pixels: list[list[list[int]]] | None = Field(None, description="28x28 arrays of 0..255, with ?pixels=true")
