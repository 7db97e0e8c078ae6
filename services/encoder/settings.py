"""Encoder settings: AELINK_ENCODER_* environment variables (see shared.service.settings)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.service.images import DEFAULT_MAX_PIXELS
from shared.service.settings import ServiceSettings


class EncoderSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="AELINK_ENCODER_")

    port: int = Field(8001, ge=1, le=65535)
    max_image_pixels: int = Field(DEFAULT_MAX_PIXELS, ge=784, description="pixels (width x height) of one image"
                                  " file; larger files get 413 before they are decoded")
