"""The JSON form of a batch of codes: what the encoder returns and the decoder accepts, unchanged."""

from __future__ import annotations

import base64
import binascii

from pydantic import BaseModel, ConfigDict, Field

from shared.codec.wire.formats import FINGERPRINT_RE, FORMATS, MAX_NDIM, VERSION, Codes, WireError


class CodesJSON(BaseModel):
    """A batch of codes in JSON: what the encoder returns and the decoder accepts, unchanged."""

    model_config = ConfigDict(extra="ignore")  # the encoder adds informative fields the decoder skips

    # The schema states each rule from_json checks that JSON Schema can say, so that schema and service
    # agree (the schemathesis test holds them to it); what it cannot say (each code's length for its
    # format and shape) is refused as 400 bad-codes.
    version: int = Field(VERSION, description="wire version; this version reads 1",
                         json_schema_extra={"enum": [VERSION]})
    fingerprint: str = Field(description="pair fingerprint of the weights that made the codes (16 hex digits)",
                             examples=["3f9a1c0de2b47a55"], json_schema_extra={"pattern": FINGERPRINT_RE.pattern})
    format: str = Field(description="code format: 'f32' (float32), 'u8' (8-bit, per-code scale) or 'rc'"
                        " (entropy coded, variable length; rd models)", examples=["f32"],
                        json_schema_extra={"enum": list(FORMATS)})
    shape: list[int] = Field(description="shape of one code, e.g. [32]", examples=[[32]], json_schema_extra={
        "minItems": 1, "maxItems": MAX_NDIM, "items": {"type": "integer", "minimum": 1}})
    codes: list[str] = Field(description="one standard base64 string per code",
                             json_schema_extra={"minItems": 1, "items": {"type": "string", "minLength": 1}})


def to_json(codes: Codes) -> dict:
    return {
        "version": VERSION, "fingerprint": codes.fingerprint, "format": codes.format,
        "shape": list(codes.shape), "codes": [base64.b64encode(p).decode("ascii") for p in codes.payloads],
    }


def from_json(doc: CodesJSON | dict | str | bytes) -> Codes:
    """Parse the JSON form (a model, a dict or the text), with messages that point at the bad field."""
    from pydantic import ValidationError

    try:
        if isinstance(doc, str | bytes):
            doc = CodesJSON.model_validate_json(doc)
        elif isinstance(doc, dict):
            doc = CodesJSON.model_validate(doc)
    except ValidationError as e:
        raise WireError("invalid codes JSON: " + "; ".join(
            f"{'.'.join(map(str, err['loc'])) or 'body'}: {err['msg']}" for err in e.errors())) from None
    if doc.version != VERSION:
        raise WireError(f"code format version {doc.version} is not supported (this version reads {VERSION})")
    payloads = []
    for i, text in enumerate(doc.codes):
        try:
            payloads.append(base64.b64decode(text, validate=True))
        except (binascii.Error, ValueError):
            raise WireError(f"codes[{i}] is not valid base64") from None
    return Codes(doc.fingerprint, doc.format, tuple(doc.shape), tuple(payloads))
