"""Everything the serving app reads from its environment: the list the Helm chart must set."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from mlkube.core.settings import LoggingSettings, ModelSettings


class Settings(ModelSettings, LoggingSettings):
    """Each field's alias is its env var. Unknown env vars are ignored."""

    model_config = SettingsConfigDict(frozen=True)
    model_version: str | None = Field(
        None,
        alias="MODEL_VERSION",
        pattern=r"^[1-9][0-9]*$",
        description="load exactly this version (pinned by the rollout operator); unset: follow "
        "the alias",
    )
    model_watch_seconds: float = Field(
        0.0,
        alias="MODEL_WATCH_SECONDS",
        ge=0,
        description="poll the alias this often and swap to a new version (0: off; ignored when "
        "MODEL_VERSION is set)",
    )
    # A container listens on all interfaces; `make up` passes 127.0.0.1.
    host: str = Field("0.0.0.0", alias="SERVE_HOST", description="listen address")
    port: int = Field(8080, alias="SERVE_PORT", ge=1, le=65535, description="listen port")
    max_rows: int = Field(10_000, alias="SERVE_MAX_ROWS", ge=1, description="rows per request")
    max_body_bytes: int = Field(
        4 * 1024 * 1024,
        alias="SERVE_MAX_BODY_BYTES",
        ge=1024,
        description="request body limit (413 above it)",
    )
    batching: bool = Field(
        True,
        alias="SERVE_BATCHING",
        description="predict concurrent requests together in one call",
    )
    batch_max_wait_ms: float = Field(
        1.0,
        alias="SERVE_BATCH_MAX_WAIT_MS",
        ge=0,
        le=1000,
        description="how long a batch may wait for more requests, only under concurrent load",
    )
    batch_max_rows: int = Field(
        1024, alias="SERVE_BATCH_MAX_ROWS", ge=1, description="rows per batched predict call"
    )

    @property
    def model_uri_description(self) -> str:
        if self.model_version:
            return f"models:/{self.model_name}/{self.model_version}"
        return f"models:/{self.model_name}@{self.model_alias}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once from the environment (tests override the dependency)."""
    return Settings()
