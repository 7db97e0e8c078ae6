"""Decoder settings: AELINK_DECODER_* environment variables (see shared.service.settings)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.service.settings import ServiceSettings


class DecoderSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="AELINK_DECODER_")

    port: int = Field(8002, ge=1, le=65535)
