"""The operator's writes to a Deployment, as JSON patches (RFC 6902): the pin in the pod
template, the rollout record in the metadata, and the hash that tells the operator's own template
from someone else's.

Only the pin changes in the pod template: ``MODEL_VERSION`` of the serving container(s) and the
annotation ``mlkube.io/model-version``. A template that differs only by the pin is the same
template, so going back to the stable version brings its old ReplicaSet back (as ``kubectl
rollout undo`` does) instead of creating a new one and restarting healthy pods.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from mlkube.core.deployment import containers, env_index, serving_containers
from mlkube.core.names import (
    ANNOTATION_MODEL_VERSION,
    ANNOTATION_PREVIOUS_MODEL_VERSION,
    ANNOTATION_ROLLOUT_GENERATION,
    ENV_MODEL_VERSION,
)
from mlkube.core.record import RolloutRecord

JsonPatch = list[dict[str, Any]]


def _pointer(*parts: str | int) -> str:
    """A JSON pointer (RFC 6901): ``~`` and ``/`` inside keys are escaped."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _annotation_ops(
    base: tuple[str, ...], current: Mapping[str, Any] | None, changes: Mapping[str, str | None]
) -> JsonPatch:
    """Ops that set (value) or remove (None) annotations under ``base`` (a metadata path)."""
    ops: JsonPatch = []
    if current is None:
        values = {k: v for k, v in changes.items() if v is not None}
        if values:
            ops.append({"op": "add", "path": _pointer(*base, "annotations"), "value": values})
        return ops
    for key, value in changes.items():
        if value is not None:
            if current.get(key) != value:
                ops.append(
                    {"op": "add", "path": _pointer(*base, "annotations", key), "value": value}
                )
        elif key in current:
            ops.append({"op": "remove", "path": _pointer(*base, "annotations", key)})
    return ops


def _metadata_ops(
    body: Mapping[str, Any], base: tuple[str, ...], changes: Mapping[str, str | None]
) -> JsonPatch:
    node: Any = body
    for part in base:
        node = node.get(part) if isinstance(node, Mapping) else None
    if node is None:  # no metadata object at all (only possible for the pod template)
        values = {k: v for k, v in changes.items() if v is not None}
        if not values:
            return []
        return [{"op": "add", "path": _pointer(*base), "value": {"annotations": values}}]
    annotations = node.get("annotations")
    return _annotation_ops(base, annotations, changes)


def template_patch(body: Mapping[str, Any], version: str) -> JsonPatch:
    """Ops that pin the pod template to ``version``; nothing else in the template changes, so
    pinning back the stable version gives back the stable template (and its ReplicaSet).

    Only the ``MODEL_VERSION`` entry and the ``mlkube.io/model-version`` annotation change (and
    operator v1's ``previous-model-version`` annotation goes); ``test`` ops guard the list
    positions we rely on, so a concurrent edit of the containers makes the patch fail (and the
    reconciler re-reads) instead of writing to the wrong entry."""
    ops: JsonPatch = []
    found = containers(body)
    for index in serving_containers(body):
        container = found[index]
        base = ("spec", "template", "spec", "containers", index)
        position = env_index(container, ENV_MODEL_VERSION)
        entry = {"name": ENV_MODEL_VERSION, "value": version}
        if position is not None and (container.get("env") or [])[position] == entry:
            continue
        ops.append({"op": "test", "path": _pointer(*base, "name"), "value": container.get("name")})
        if container.get("env") is None:
            ops.append({"op": "add", "path": _pointer(*base, "env"), "value": [entry]})
        elif position is None:
            ops.append({"op": "add", "path": _pointer(*base, "env", "-"), "value": entry})
        else:
            ops.append(
                {
                    "op": "test",
                    "path": _pointer(*base, "env", position, "name"),
                    "value": ENV_MODEL_VERSION,
                }
            )
            ops.append({"op": "replace", "path": _pointer(*base, "env", position), "value": entry})
    ops += _metadata_ops(
        body,
        ("spec", "template", "metadata"),
        {ANNOTATION_MODEL_VERSION: version, ANNOTATION_PREVIOUS_MODEL_VERSION: None},
    )
    return ops


def _pruned(node: Any) -> Any:
    """``node`` without empty objects and lists (the API server treats them as absent)."""
    if isinstance(node, Mapping):
        kept = {k: _pruned(v) for k, v in node.items()}
        return {k: v for k, v in kept.items() if v not in ({}, [], None)}
    if isinstance(node, list):
        return [_pruned(v) for v in node]
    return node


def template_hash(body: Mapping[str, Any]) -> str:
    """A hash of the pod template with the pin (``MODEL_VERSION``, the version annotations)
    left out: the same before and after the operator pins a version, another one when someone
    else changes the template (``helm upgrade``, ``kubectl rollout restart``, ``set image``)."""
    template = copy.deepcopy(dict((body.get("spec") or {}).get("template") or {}))
    for container in (template.get("spec") or {}).get("containers") or []:
        if container.get("env"):
            container["env"] = [e for e in container["env"] if e.get("name") != ENV_MODEL_VERSION]
    annotations = (template.get("metadata") or {}).get("annotations")
    if annotations:
        for key in (ANNOTATION_MODEL_VERSION, ANNOTATION_PREVIOUS_MODEL_VERSION):
            annotations.pop(key, None)
    text = json.dumps(_pruned(template), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def state_patch(body: Mapping[str, Any], changes: Mapping[str, str | None]) -> JsonPatch:
    """Ops that set/remove the operator's own annotations on the Deployment's metadata."""
    return _metadata_ops(body, ("metadata",), changes)


def with_precondition(body: Mapping[str, Any], ops: JsonPatch) -> JsonPatch:
    """Make the patch conditional on the resourceVersion we read: the API server answers
    409 Conflict when someone wrote in between, and the reconciler re-reads and retries."""
    version = (body.get("metadata") or {}).get("resourceVersion")
    if not ops or not version:
        return ops
    return [{"op": "replace", "path": "/metadata/resourceVersion", "value": version}, *ops]


def pinned_template(body: Mapping[str, Any], version: str) -> dict[str, Any]:
    """The pod template pinned to ``version`` (what the canary runs)."""
    template: dict[str, Any] = copy.deepcopy(dict((body.get("spec") or {}).get("template") or {}))
    found = template.get("spec", {}).get("containers") or []
    for index in serving_containers(body):
        container = found[index]
        position = env_index(container, ENV_MODEL_VERSION)
        env = [v for v in container.get("env") or [] if v.get("name") != ENV_MODEL_VERSION]
        entry = {"name": ENV_MODEL_VERSION, "value": version}
        env.insert(position if position is not None else len(env), entry)
        container["env"] = env
    annotations = template.setdefault("metadata", {}).setdefault("annotations", {})
    annotations[ANNOTATION_MODEL_VERSION] = version
    annotations.pop(ANNOTATION_PREVIOUS_MODEL_VERSION, None)
    return template


def record_patch(body: Mapping[str, Any], record: RolloutRecord) -> JsonPatch:
    """Ops that make the Deployment's record ``record`` (nothing when it already is); any write
    drops the generation an operator before 0.4 recorded."""
    ops = state_patch(body, record.annotations())
    if ops:
        ops += state_patch(body, {ANNOTATION_ROLLOUT_GENERATION: None})
    return ops
