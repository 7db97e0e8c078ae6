"""Service settings from the environment, validated at start-up with a message that names the variable."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_WEIGHTS = ROOT / "weights"  # the committed weights, so a service starts with no arguments


class SettingsError(ValueError):
    """Settings that cannot work; the message lists each variable and what is wrong with it."""


class ServiceSettings(BaseSettings):
    """What both services read. Each service sets its own prefix (AELINK_ENCODER_, AELINK_DECODER_)."""

    # An empty variable means unset: compose files pass `TOKEN: ${AELINK_TOKEN:-}` through as "".
    model_config = SettingsConfigDict(env_ignore_empty=True)

    weights_dir: Path = Field(DEFAULT_WEIGHTS, description="folder of <model>/<half>.safetensors")
    weights_path: Path | None = Field(None, description="this half's file; overrides weights_dir/model")
    model: str = Field("rd64", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="model to serve")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    max_request_bytes: int = Field(4 * 1024 * 1024, ge=1024, description="larger bodies get 413")
    max_images: int = Field(256, ge=1, le=65536, description="images or codes per request; more get 413")
    token: SecretStr | None = Field(None, description="when set, /v1/* require 'Authorization: Bearer <token>'")
    threads: int = Field(1, ge=1, le=64, description="torch CPU threads for inference, and threads parsing"
                         " JSON and multipart bodies, per worker process")
    workers: int = Field(1, ge=1, le=64, description="worker processes, each loading the half; THREADS x"
                         " WORKERS bounds the CPU the service uses")
    max_batch: int = Field(16, ge=1, le=1024, description="images per model call: concurrent requests"
                           " are batched up to this many (every call is padded to exactly this many)")
    batch_wait_ms: float = Field(2.0, ge=0, le=1000, description="longest a request waits for others to"
                                 " share its batch")
    max_queue: int = Field(1024, ge=1, le=1 << 20, description="images waiting for a batch; past it"
                           " requests get 503 with Retry-After at once")
    log_level: str = Field("info", pattern=r"^(critical|error|warning|info|debug|trace)$")
    shutdown_drain_seconds: float = Field(
        1.0, ge=0, le=300, description="on SIGTERM, /readyz says 503 and requests are still served this long")
    shutdown_timeout_seconds: float = Field(
        8.0, ge=0, le=3600, description="then in-flight requests get this long to finish before they are cut")
    cors_origins: str = Field("", description="comma-separated origins whose pages may call /v1/* from a browser"
                              " (e.g. http://localhost:8080), or *; empty: none (closed)")

    @field_validator("token")
    @classmethod
    def _token_not_blank(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not v.get_secret_value().strip():
            raise ValueError("must not be empty when set (unset it to turn auth off)")
        return v

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, v: str) -> str:
        for origin in filter(None, (o.strip() for o in v.split(","))):
            if origin != "*" and not re.fullmatch(r"https?://[^/\s]+", origin):
                raise ValueError(f"{origin!r} is not an origin like http://host:port (no path) or *")
        return v

    @property
    def origins(self) -> list[str]:
        return [o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip()]

    def half_path(self, half: str) -> Path:
        return self.weights_path or self.weights_dir / self.model / f"{half}.safetensors"


def load_settings(cls: type[ServiceSettings], **overrides) -> ServiceSettings:
    """Build settings from the environment plus explicit overrides; fail with one readable message."""
    try:
        return cls(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as e:
        prefix = cls.model_config.get("env_prefix", "")
        lines = [
            f"  {prefix}{str(err['loc'][0]).upper() if err['loc'] else '?'}: {err['msg']}"
            f" (got {err.get('input')!r})"
            for err in e.errors()
        ]
        raise SettingsError("invalid settings:\n" + "\n".join(lines)) from None
