"""The operator's decisions, as pure functions of a Deployment body and the registry's answer.

Nothing here does I/O: ``decide`` returns an :class:`Action` (a JSON patch for the Deployment,
a tag for the model version, an Event to emit), and :mod:`rollout.reconciler` carries it out.

State lives in the Deployment, so a restarted operator carries on where the last one stopped:

- pod template: env ``MODEL_VERSION`` of the serving container(s), annotations
  ``mlkube.io/model-version`` (the pin) and ``mlkube.io/previous-model-version`` (what it
  replaced, the version a failed rollout goes back to);
- Deployment metadata (not the template, so writing it restarts no pod):
  ``mlkube.io/rollout-status`` (progressing | succeeded | failed) and
  ``mlkube.io/failed-model-version`` (the version not to roll to again until the alias moves).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlkube.core.deployment import (
    Phase,
    containers,
    env_index,
    pinned_version,
    rollout_phase,
    serving_containers,
    template_annotations,
)
from mlkube.core.names import (
    ANNOTATION_MODEL_ALIAS,
    ANNOTATION_MODEL_VERSION,
    ANNOTATION_PREVIOUS_MODEL_VERSION,
    DEFAULT_ALIAS,
    ENV_MODEL_VERSION,
    LABEL_MODEL_NAME,
    PREFIX,
    TAG_PREFIX,
)

ANNOTATION_ROLLOUT_STATUS = f"{PREFIX}/rollout-status"
ANNOTATION_FAILED_VERSION = f"{PREFIX}/failed-model-version"
TAG_ROLLOUT = f"{TAG_PREFIX}.rollout"

STATUS_PROGRESSING = "progressing"
STATUS_SUCCEEDED = "succeeded"
STATUS_FAILED = "failed"

JsonPatch = list[dict[str, Any]]


class Kind(enum.Enum):
    NOOP = "noop"  # nothing to write
    ROLL = "roll"  # pin the pod template to a new version
    SUCCEED = "succeed"  # the rollout finished: report it
    REVERT = "revert"  # the rollout missed its deadline: restore the previous version
    TAG = "tag"  # only the registry tag is missing
    FORGET = "forget"  # the alias moved off a failed version: drop the marker


@dataclass(frozen=True)
class AliasTarget:
    """What the registry says: the version the alias points at, and its rollout tag."""

    version: str
    rollout_tag: str | None = None


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True)
class Action:
    kind: Kind
    reason: str
    version: str | None = None
    previous: str | None = None
    patch: JsonPatch = field(default_factory=list)
    tag: str | None = None  # value of TAG_ROLLOUT to set on ``version``
    event: Event | None = None


@dataclass(frozen=True)
class Watched:
    """The parts of a labelled Deployment the operator reads."""

    namespace: str
    name: str
    model_name: str
    alias: str
    pinned: str | None  # MODEL_VERSION of the serving container(s), else the annotation
    previous: str | None
    status: str | None
    failed_version: str | None


def parse(body: Mapping[str, Any]) -> Watched | None:
    """The Deployment as the operator sees it, or None when it does not carry our label.

    Labels are checked here, not only by a selector: some API servers (and emulators) ignore
    label selectors, and a Deployment may lose its label while we watch it."""
    meta = body.get("metadata") or {}
    model_name = (meta.get("labels") or {}).get(LABEL_MODEL_NAME)
    if not model_name:
        return None
    annotations = meta.get("annotations") or {}
    pod_annotations = template_annotations(body)
    return Watched(
        namespace=meta.get("namespace") or "default",
        name=meta.get("name", ""),
        model_name=model_name,
        alias=annotations.get(ANNOTATION_MODEL_ALIAS) or DEFAULT_ALIAS,
        pinned=pinned_version(body),
        previous=pod_annotations.get(ANNOTATION_PREVIOUS_MODEL_VERSION) or None,
        status=annotations.get(ANNOTATION_ROLLOUT_STATUS) or None,
        failed_version=annotations.get(ANNOTATION_FAILED_VERSION) or None,
    )


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


def template_patch(body: Mapping[str, Any], version: str | None, previous: str | None) -> JsonPatch:
    """Ops that pin the pod template to ``version`` (None: unpin) with ``previous`` recorded.

    Only the ``MODEL_VERSION`` entry and our annotations change; ``test`` ops guard the list
    positions we rely on, so a concurrent edit of the containers makes the patch fail (and the
    reconciler re-reads) instead of writing to the wrong entry."""
    ops: JsonPatch = []
    found = containers(body)
    for index in serving_containers(body):
        container = found[index]
        base = ("spec", "template", "spec", "containers", index)
        ops.append({"op": "test", "path": _pointer(*base, "name"), "value": container.get("name")})
        position = env_index(container, ENV_MODEL_VERSION)
        entry = {"name": ENV_MODEL_VERSION, "value": version}
        if version is None:
            if position is not None:
                ops.append(
                    {
                        "op": "test",
                        "path": _pointer(*base, "env", position, "name"),
                        "value": ENV_MODEL_VERSION,
                    }
                )
                ops.append({"op": "remove", "path": _pointer(*base, "env", position)})
        elif container.get("env") is None:
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
        {ANNOTATION_MODEL_VERSION: version, ANNOTATION_PREVIOUS_MODEL_VERSION: previous},
    )
    return ops


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


def _roll(body: Mapping[str, Any], watched: Watched, version: str, why: str) -> Action:
    previous = watched.pinned
    ops = template_patch(body, version, previous)
    ops += state_patch(
        body, {ANNOTATION_ROLLOUT_STATUS: STATUS_PROGRESSING, ANNOTATION_FAILED_VERSION: None}
    )
    if previous is None:
        message = f"Pinning model {watched.model_name} to version {version} ({why})"
    else:
        message = f"Rolling model {watched.model_name} from version {previous} to {version} ({why})"
    return Action(
        Kind.ROLL,
        reason=message,
        version=version,
        previous=previous,
        patch=ops,
        event=Event("Normal", "ModelRolloutStarted", message),
    )


def decide(body: Mapping[str, Any], alias: AliasTarget | None, registry_ok: bool = True) -> Action:
    """What to do with this Deployment now.

    ``alias`` is None when the alias is not set (``registry_ok`` True) or when the registry
    gave no answer: unreachable, or refusing the call, e.g. 401/403 (``registry_ok`` False).
    Then nothing is rolled forward, but a failed rollout is still reverted, since that must not
    wait for MLflow."""
    watched = parse(body)
    if watched is None:
        return Action(Kind.NOOP, reason="not labelled for the operator")

    if watched.status == STATUS_PROGRESSING and watched.pinned is not None:
        version = watched.pinned
        phase = rollout_phase(body)
        if phase is Phase.FAILED:
            restore = watched.previous
            ops = template_patch(body, restore, version if restore is not None else None)
            ops += state_patch(
                body, {ANNOTATION_ROLLOUT_STATUS: STATUS_FAILED, ANNOTATION_FAILED_VERSION: version}
            )
            target = f"version {restore}" if restore else "the unpinned template"
            message = (
                f"Model {watched.model_name} version {version} did not become available "
                f"(ProgressDeadlineExceeded): restored {target}; version {version} will not be "
                f"rolled out again until alias {watched.alias} moves"
            )
            return Action(
                Kind.REVERT,
                reason=message,
                version=version,
                previous=restore,
                patch=ops,
                tag=STATUS_FAILED,
                event=Event("Warning", "ModelRolloutFailed", message),
            )
        if phase is Phase.COMPLETE:
            if not registry_ok:
                return Action(Kind.NOOP, reason="rollout complete; waiting for the registry to tag")
            message = (
                f"Model {watched.model_name} version {version} is rolled out: "
                "all replicas updated and available"
            )
            return Action(
                Kind.SUCCEED,
                reason=message,
                version=version,
                previous=watched.previous,
                patch=state_patch(body, {ANNOTATION_ROLLOUT_STATUS: STATUS_SUCCEEDED}),
                tag=STATUS_SUCCEEDED,
                event=Event("Normal", "ModelRolloutSucceeded", message),
            )
        # Still progressing: follow the alias if it moved on (the newer version supersedes).
        if alias is None or alias.version in (version, watched.failed_version):
            return Action(Kind.NOOP, reason=f"rollout of version {version} in progress")
        return _roll(body, watched, alias.version, f"alias {watched.alias} moved during rollout")

    if alias is None:
        if not registry_ok:
            return Action(
                Kind.NOOP,
                reason="the registry gave no answer (unreachable, or it refused the call); "
                "keeping the current version",
            )
        return Action(
            Kind.NOOP,
            reason=f"alias {watched.alias} of model {watched.model_name} is not set (or the "
            "model is not registered); keeping the current version",
        )

    if alias.version == watched.failed_version:
        if alias.rollout_tag is None:
            return Action(
                Kind.TAG,
                reason="tagging the failed version",
                version=alias.version,
                tag=STATUS_FAILED,
            )
        return Action(
            Kind.NOOP,
            reason=f"version {alias.version} failed to roll out; waiting for alias "
            f"{watched.alias} to move",
        )

    if alias.version == watched.pinned:
        if watched.failed_version is not None:  # e.g. the alias was moved back by hand
            return Action(
                Kind.FORGET,
                reason=f"alias {watched.alias} moved off failed version {watched.failed_version}",
                version=alias.version,
                patch=state_patch(body, {ANNOTATION_FAILED_VERSION: None}),
            )
        if watched.status == STATUS_SUCCEEDED and alias.rollout_tag is None:
            return Action(
                Kind.TAG,
                reason="tagging the rolled-out version",
                version=alias.version,
                tag=STATUS_SUCCEEDED,
            )
        return Action(Kind.NOOP, reason=f"pinned to version {alias.version}, as alias says")

    why = f"alias {watched.alias} -> {alias.version}"
    return _roll(body, watched, alias.version, why)
