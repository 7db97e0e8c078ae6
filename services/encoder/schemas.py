"""Request and response bodies of POST /v1/encode (the JSON forms; OpenAPI shows them)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, model_validator

from shared.codec.wire import CodesJSON

PIXELS_SCHEMA = {"type": "array", "items": {"type": "array", "items": {"type": "array", "items": {"type": "number"},
                                                                    "minItems": 28, "maxItems": 28},
                                          "minItems": 28, "maxItems": 28}}


class EncodeRequest(BaseModel):
    """Images as JSON: exactly one of `images` (base64 PNGs) or `pixels` (28x28 arrays)."""

    model_config = ConfigDict(extra="forbid")

    images: list[str] | None = Field(None, description="base64 PNG, JPEG or WebP files: 28x28 8-bit ones as they"
                                   " are, others fitted to MNIST form (see ?fit=)")
    # Validated as a plain list and checked whole by numpy (shape, range, NaN): one clear message
    # instead of one pydantic error per pixel. The schema still tells clients what to send.
    pixels: Annotated[list, WithJsonSchema(PIXELS_SCHEMA)] | None = Field(
        None, description="28x28 arrays: all integers 0..255, or floats in [0,1] (any float selects [0,1])")

    @model_validator(mode="after")
    def _exactly_one(self) -> EncodeRequest:
        if (self.images is None) == (self.pixels is None):
            raise ValueError("give exactly one of 'images' (base64 PNGs) or 'pixels' (28x28 arrays)")
        return self


class EncodeResponse(CodesJSON):
    """The codes, ready to POST unchanged to the decoder's /v1/decode."""

    model: str = Field(description="model that made the codes", examples=["compact32"])
    count: int = Field(description="number of codes (one per image, in order)")
    code_bytes: int | None = Field(None, description="bytes of one code, in a fixed-length format")
    code_lengths: list[int] | None = Field(None, description="bytes of each code, in a variable-length format"
                                           " (rc); on the binary form each also takes its varint length")
    fitted: list[bool] | None = Field(None, description="per image: true when it was fitted to MNIST form (any"
                                      " size or mode), false when taken as it was (28x28, 8-bit, or pixels)")
    inputs: list[str] | None = Field(None, description="with ?return_inputs=true: the 28x28 images the codes were"
                                     " made from, as base64 PNGs (8-bit grayscale)")
