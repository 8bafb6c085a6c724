"""Everything the serving app reads from its environment: the list the Helm chart must set."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlkube.names import DEFAULT_ALIAS, DEFAULT_MODEL_NAME

LogLevel = Literal["debug", "info", "warning", "error", "critical"]


class Settings(BaseSettings):
    """Each field's alias is its env var. Unknown env vars are ignored."""

    model_config = SettingsConfigDict(
        populate_by_name=True, protected_namespaces=(), extra="ignore", frozen=True
    )

    tracking_uri: str = Field(
        "http://127.0.0.1:5000", alias="MLFLOW_TRACKING_URI", min_length=1,
        description="MLflow tracking server (the model registry)",
    )  # fmt: skip
    model_name: str = Field(DEFAULT_MODEL_NAME, alias="MODEL_NAME", min_length=1)
    model_alias: str = Field(DEFAULT_ALIAS, alias="MODEL_ALIAS", min_length=1)
    model_version: str | None = Field(
        None, alias="MODEL_VERSION", pattern=r"^[1-9][0-9]*$",
        description="load exactly this version (pinned by the rollout operator); unset: follow "
        "the alias",
    )  # fmt: skip
    model_watch_seconds: float = Field(
        0.0, alias="MODEL_WATCH_SECONDS", ge=0,
        description="poll the alias this often and swap to a new version (0: off; ignored when "
        "MODEL_VERSION is set)",
    )  # fmt: skip
    # A container listens on all interfaces; `make up` passes 127.0.0.1.
    host: str = Field("0.0.0.0", alias="SERVE_HOST")
    port: int = Field(8080, alias="SERVE_PORT", ge=1, le=65535)
    max_rows: int = Field(10_000, alias="SERVE_MAX_ROWS", ge=1, description="rows per request")
    max_body_bytes: int = Field(
        4 * 1024 * 1024, alias="SERVE_MAX_BODY_BYTES", ge=1024, description="request body limit"
    )
    batching: bool = Field(
        True, alias="SERVE_BATCHING",
        description="predict concurrent requests together in one call",
    )  # fmt: skip
    batch_max_wait_ms: float = Field(
        1.0, alias="SERVE_BATCH_MAX_WAIT_MS", ge=0, le=1000,
        description="how long a batch may wait for more requests, only under concurrent load",
    )  # fmt: skip
    batch_max_rows: int = Field(
        1024, alias="SERVE_BATCH_MAX_ROWS", ge=1, description="rows per batched predict call"
    )
    log_level: LogLevel = Field("info", alias="LOG_LEVEL")

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @property
    def model_uri_description(self) -> str:
        if self.model_version:
            return f"models:/{self.model_name}/{self.model_version}"
        return f"models:/{self.model_name}@{self.model_alias}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once from the environment (tests override the dependency)."""
    return Settings()
