"""The settings every component extends: one declaration, and one accepted form, of each
variable they share. Each field's alias is its env var (the contract with the chart)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlkube.core.names import DEFAULT_ALIAS, DEFAULT_MODEL_NAME

# Python's logging levels. Any case is accepted (`info`, `INFO`); the value is upper case.
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
DEFAULT_TRACKING_URI = "http://127.0.0.1:5000"


class CoreSettings(BaseSettings):
    """What every component reads: where MLflow is."""

    model_config = SettingsConfigDict(
        populate_by_name=True, protected_namespaces=(), extra="ignore"
    )

    tracking_uri: str = Field(
        DEFAULT_TRACKING_URI,
        alias="MLFLOW_TRACKING_URI",
        min_length=1,
        description="MLflow tracking server (and its model registry)",
    )


class ModelSettings(CoreSettings):
    """The components that work on one registered model and its alias (training, serving)."""

    model_name: str = Field(
        DEFAULT_MODEL_NAME, alias="MODEL_NAME", min_length=1, description="registered model"
    )
    model_alias: str = Field(
        DEFAULT_ALIAS,
        alias="MODEL_ALIAS",
        min_length=1,
        description="alias of the version in production",
    )


class LoggingSettings(BaseSettings):
    """The long-running components' log level (the model server, the operator)."""

    log_level: LogLevel = Field("INFO", alias="LOG_LEVEL", description="log level, any case")

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value
