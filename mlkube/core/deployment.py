"""Pure readers of a serving Deployment (a ``kubectl get -o json`` / API body as a mapping).

One rule each, used alike by the rollout operator (which enforces it), the deploy driver (`make
status`) and the end-to-end test (which checks it): which model version the pods are pinned to,
and whether the Deployment's latest rollout is done. The operator's rollout record has its own
module, :mod:`mlkube.core.record`.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from typing import Any

from mlkube.core.names import (
    ANNOTATION_MODEL_VERSION,
    ENV_MODEL_NAME,
    ENV_MODEL_VERSION,
)


class Phase(enum.Enum):
    PROGRESSING = "progressing"
    COMPLETE = "complete"
    FAILED = "failed"


def containers(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    spec = ((body.get("spec") or {}).get("template") or {}).get("spec") or {}
    return list(spec.get("containers") or [])


def template_annotations(body: Mapping[str, Any]) -> dict[str, str]:
    template = (body.get("spec") or {}).get("template") or {}
    return dict((template.get("metadata") or {}).get("annotations") or {})


def env_index(container: Mapping[str, Any], name: str) -> int | None:
    for index, var in enumerate(container.get("env") or []):
        if var.get("name") == name:
            return index
    return None


def serving_containers(body: Mapping[str, Any]) -> list[int]:
    """Indexes of the containers that run the model: those with ``MODEL_VERSION`` in their env,
    else those with ``MODEL_NAME``, else the first one (sidecars are usually appended)."""
    found_containers = containers(body)
    for env_name in (ENV_MODEL_VERSION, ENV_MODEL_NAME):
        found = [i for i, c in enumerate(found_containers) if env_index(c, env_name) is not None]
        if found:
            return found
    return [0] if found_containers else []


def pinned_version(body: Mapping[str, Any]) -> str | None:
    """The version the pods run: ``MODEL_VERSION`` when every serving container agrees on it,
    else the pod-template annotation, else None (unpinned: the pods follow the alias)."""
    found_containers = containers(body)
    values: set[str | None] = set()
    for index in serving_containers(body):
        env = found_containers[index].get("env") or []
        position = env_index(found_containers[index], ENV_MODEL_VERSION)
        values.add(None if position is None else env[position].get("value"))
    if len(values) == 1:
        (value,) = values
        if value:
            return str(value)
        if value is None:  # no env at all: the annotation may still tell
            return template_annotations(body).get(ANNOTATION_MODEL_VERSION) or None
    return None  # containers disagree: not pinned to one version


def parse_time(value: Any) -> dt.datetime | None:
    """A Kubernetes timestamp (RFC 3339, ``2026-01-02T03:04:05Z``) as an aware datetime."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def format_time(when: dt.datetime) -> str:
    """The form Kubernetes writes timestamps in (UTC, whole seconds)."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition_time(condition: Mapping[str, Any]) -> dt.datetime | None:
    """When a Deployment condition was last written (lastUpdateTime, else lastTransitionTime)."""
    return parse_time(condition.get("lastUpdateTime")) or parse_time(
        condition.get("lastTransitionTime")
    )


def rollout_phase(body: Mapping[str, Any], since: dt.datetime | None = None) -> Phase:
    """The state of the Deployment's latest rollout, as ``kubectl rollout status`` reads it:
    complete once the controller saw the latest spec and every replica is updated and available
    with no old pod left.

    ``since``: when the rollout was started (the patch). A ProgressDeadlineExceeded condition
    written before that is about an earlier ReplicaSet (e.g. an alias flipping back to a version
    whose ReplicaSet is kept in the history) and is not trusted. Timestamps have whole seconds:
    a condition in the same second as the patch counts."""
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    generation = meta.get("generation")
    observed = status.get("observedGeneration")
    if generation is not None and (observed is None or observed < generation):
        return Phase.PROGRESSING  # the controller has not seen our change yet
    floor = since.replace(microsecond=0) if since is not None else None
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and (
            condition.get("reason") == "ProgressDeadlineExceeded"
        ):
            written = condition_time(condition)
            if floor is not None and written is not None and written < floor:
                continue  # stale: older than the rollout it would judge
            return Phase.FAILED
    replicas = spec.get("replicas", 1)
    updated = status.get("updatedReplicas") or 0
    total = status.get("replicas") or 0
    available = status.get("availableReplicas") or 0
    if updated < replicas or total > updated or available < updated:
        return Phase.PROGRESSING
    return Phase.COMPLETE
