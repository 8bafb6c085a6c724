"""What the rollout operator reads from its environment: the list the chart must set.

Every field is one env var (its alias). ``python -m rollout`` flags override a few of them.
"""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator

from mlkube.core.settings import CoreSettings, LoggingSettings


class OperatorSettings(CoreSettings, LoggingSettings):
    poll_seconds: float = Field(
        15.0,
        alias="ROLLOUT_POLL_SECONDS",
        gt=0,
        description="how often every Deployment is reconciled against the registry",
    )
    webhook_secret: SecretStr = Field(
        SecretStr(""),
        alias="ROLLOUT_WEBHOOK_SECRET",
        description="shared HMAC secret of the MLflow webhook (empty: POST /webhook answers 401)",
    )
    http_port: int = Field(
        8000,
        alias="ROLLOUT_HTTP_PORT",
        ge=1,
        le=65535,
        description="port of POST /webhook and GET /metrics",
    )
    namespace: str = Field(
        "",
        alias="ROLLOUT_NAMESPACE",
        description="namespace to watch (empty: the operator's own, or all with cluster-wide)",
    )
    cluster_wide: bool = Field(
        False,
        alias="ROLLOUT_CLUSTER_WIDE",
        description="watch Deployments in every namespace (needs a ClusterRole)",
    )

    @model_validator(mode="after")
    def _one_scope(self) -> OperatorSettings:
        if self.cluster_wide and self.namespace:
            raise ValueError(
                "ROLLOUT_NAMESPACE and ROLLOUT_CLUSTER_WIDE=true exclude each other: "
                "set one of them"
            )
        return self


def env_names() -> list[str]:
    """The env vars the operator reads, in declaration order (the chart sets these)."""
    return [info.alias or name for name, info in OperatorSettings.model_fields.items()]
