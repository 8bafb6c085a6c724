"""What the test suite reads from its environment: one class, listed with the components' in
docs/configuration.md. `.ci/run` sets the two MLKUBE_REQUIRE_* variables, so that CI can never
pass by skipping the container and cluster layers."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class SuiteSettings(BaseSettings):
    model_config = SettingsConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    require_containers: bool = Field(
        False,
        alias="MLKUBE_REQUIRE_CONTAINERS",
        description="the container layer fails instead of skipping when no engine answers",
    )
    require_cluster: bool = Field(
        False,
        alias="MLKUBE_REQUIRE_CLUSTER",
        description="the cluster layer fails instead of skipping when this host cannot run it",
    )
    timeout_scale: float = Field(
        1.0,
        alias="MLKUBE_TEST_TIMEOUT_SCALE",
        gt=0,
        description="multiplies every wait of the tests (tests/timeouts.py) on a slow machine",
    )
    keep_deploy: bool = Field(
        False,
        alias="MLKUBE_KEEP_DEPLOY",
        description="leave the cluster layer's deployment in place after the tests, to look at",
    )
    kind_cluster: str = Field(
        "mlkube", alias="KIND_CLUSTER", description="the kind cluster the e2e layer runs against"
    )
    e2e_artifacts: Path | None = Field(
        None,
        alias="E2E_ARTIFACTS",
        description="where the e2e layer writes its diagnostics; unset: a temporary folder",
    )
    ci: bool = Field(
        False, alias="CI", description="set by CI runners: generated docs must already be current"
    )

    @field_validator("ci", mode="before")
    @classmethod
    def _ci(cls, value: object) -> bool:
        # Runners set CI to "true", some to other words: anything but a "yes" is no.
        return str(value).strip().lower() in ("1", "true", "yes")


@lru_cache(maxsize=1)
def suite_settings() -> SuiteSettings:
    return SuiteSettings()
