"""Prometheus metrics of the operator, served on ``GET /metrics`` (ROLLOUT_HTTP_PORT)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


class Metrics:
    """One registry per operator instance (tests run several in one process)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.reconciles = Counter(
            "mlkube_rollout_reconciles_total",
            "Reconciles of a Deployment, by trigger (poll|webhook|event) and action taken",
            ["trigger", "action"],
            registry=self.registry,
        )
        self.rollouts = Counter(
            "mlkube_rollout_rollouts_total",
            "Rollouts by result: started, succeeded, failed (reverted: the model, or retries ran "
            "out), stalled (not the model's fault: retried later)",
            ["result"],
            registry=self.registry,
        )
        self.registry_errors = Counter(
            "mlkube_rollout_registry_errors_total",
            "Calls to the MLflow registry that failed: unreachable, 5xx, or refused (401/403 "
            "and any other 4xx but an alias or model not found)",
            registry=self.registry,
        )
        self.webhooks = Counter(
            "mlkube_rollout_webhooks_total",
            "Webhook deliveries received, by result (accepted|ignored|rejected)",
            ["result"],
            registry=self.registry,
        )
        self.alias_to_patch = Histogram(
            "mlkube_rollout_alias_change_to_patch_seconds",
            "Seconds from an alias change to the first Deployment patch for it (from the "
            "webhook's timestamp; without a webhook, from the last poll that saw the old version)",
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300),
            registry=self.registry,
        )
        self.patches = Counter(
            "mlkube_rollout_deployment_patches_total",
            "Patches the operator wrote to serving Deployments, by the action they carried "
            "(roll, succeed, note, ...): its own writes, bounded whatever others change",
            ["action"],
            registry=self.registry,
        )
        self.refusals = Counter(
            "mlkube_rollout_patch_refusals_total",
            "Patches the API server refused (admission, policy, RBAC, invalid), by the action "
            "they carried (roll, revert, stall, ...)",
            ["action"],
            registry=self.registry,
        )
        for result in ("started", "succeeded", "failed", "stalled"):
            self.rollouts.labels(result=result)  # export zeros: rate() works from the start

    def render(self) -> bytes:
        return generate_latest(self.registry)
