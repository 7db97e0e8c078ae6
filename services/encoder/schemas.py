"""Request and response bodies of POST /v1/encode (the JSON forms; OpenAPI shows them)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, model_validator

from shared.codec.wire import CodesJSON


def _images_of(pixel: dict) -> dict:
    """JSON Schema of a non-empty list of 28x28 arrays of `pixel`."""
    row = {"type": "array", "items": pixel, "minItems": 28, "maxItems": 28}
    return {"type": "array", "items": {"type": "array", "items": row, "minItems": 28, "maxItems": 28}, "minItems": 1}


# All integers 0..255, or numbers in [0,1]: what arrays_to_pixels takes, so schema and service agree.
PIXELS_SCHEMA = {"anyOf": [_images_of({"type": "integer", "minimum": 0, "maximum": 255}),
                           _images_of({"type": "number", "minimum": 0, "maximum": 1})]}
IMAGES_SCHEMA = {"type": "array", "minItems": 1,
                 "items": {"type": "string", "minLength": 1, "contentEncoding": "base64", "contentMediaType": "image/png"}}


class EncodeRequest(BaseModel):
    """Images as JSON: exactly one of `images` (base64 PNGs) or `pixels` (28x28 arrays)."""

    # oneOf/required: the schema says what the validator checks, so `{}` is invalid for both
    model_config = ConfigDict(extra="forbid", json_schema_extra={"oneOf": [{"required": ["images"]},
                                                                         {"required": ["pixels"]}]})

    images: Annotated[list[str] | None, WithJsonSchema(IMAGES_SCHEMA)] = Field(
        None, description="base64 PNG, JPEG or WebP files: 28x28 8-bit ones as they are, others fitted to MNIST"
        " form (see ?fit=)")
    # Validated as a plain list and checked whole by numpy (shape, range, NaN): one clear message
    # instead of one pydantic error per pixel. The schema still tells clients what to send.
    pixels: Annotated[list | None, WithJsonSchema(PIXELS_SCHEMA)] = Field(
        None, description="28x28 arrays: all integers 0..255, or floats in [0,1] (any float selects [0,1])")

    @model_validator(mode="after")
    def _exactly_one(self) -> EncodeRequest:
        given = [k for k in ("images", "pixels") if k in self.model_fields_set]
        if len(given) != 1 or getattr(self, given[0]) is None:
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
