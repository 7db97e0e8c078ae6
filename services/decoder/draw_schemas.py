"""Request and response bodies of POST /v1/sample and POST /v1/interpolate (the JSON forms)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from services.decoder.schemas import DecodeResponse
from shared.codec.latent import MAX_SEED, MAX_TEMPERATURE


class SampleRequest(BaseModel):
    """How many digits to draw, and how; every field may be left out (an empty body: one digit)."""

    model_config = ConfigDict(extra="forbid")  # a misspelt field should not pass silently

    n: int = Field(1, ge=1, description="digits to draw (at most the service's MAX_IMAGES; 413 beyond)")
    seed: int | None = Field(None, ge=0, le=MAX_SEED, description="the same seed gives the same digits;"
                             " left out, the service picks one and returns it")
    temperature: float = Field(1.0, ge=0.0, le=MAX_TEMPERATURE, allow_inf_nan=False,
                               description="scales the prior's spread: below 1 plainer, surer digits; 0 the"
                               " prior's mean (a fitted prior: its components' means)")
    prior: Literal["fitted", "standard"] | None = Field(
        None, description="the prior to draw from: \"fitted\", the Gaussian mixture fitted to the model's"
        " training codes (409 if the model has none), or \"standard\", N(0, I); left out, the model's default:"
        " fitted if it has one")


class SampleResponse(DecodeResponse):
    seed: int = Field(description="the seed the digits were drawn with")
    temperature: float = Field(description="the prior's std scale used")
    prior: Literal["fitted", "standard"] = Field(description="the prior the digits were drawn from")


class InterpolateResponse(DecodeResponse):
    t: list[float] = Field(description="for each image, its place on the line: 0 the first code, 1 the second")
