"""Why a rollout is not completing, read from the Deployment and its new pods: the cause (only
a model that does not load, or runs out of memory, blames the model version), the deadline of
one try, and whether every new pod reports the same model load error.

Pure functions of a Deployment body and :class:`PodView` s; the reconciler reads the pods
(``rollout.kube``), :mod:`rollout.plan` decides what to do about it.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlkube.core.deployment import pinned_version
from mlkube.core.names import ANNOTATION_LOAD_ERROR_CONFIRM, ANNOTATION_ROLLOUT_DEADLINE

DEFAULT_DEADLINE_SECONDS = 600  # Kubernetes' default progressDeadlineSeconds
DEFAULT_LOAD_ERROR_CONFIRM_SECONDS = 30.0


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def pod_version(pod: Mapping[str, Any]) -> str | None:
    """MODEL_VERSION of a pod's serving container (a pod spec, not a template)."""
    return pinned_version({"spec": {"template": pod}})


class Cause(enum.Enum):
    """Why a rollout did not complete: only MODEL (and OOM) blames the model version."""

    MODEL = "model"  # the model did not load (readiness reports the error) or ran out of memory
    CAPACITY = "capacity"  # a new pod cannot be scheduled or created (resources, quota)
    IMAGE = "image"  # image pull failures
    CONFIG = "config"  # the pod cannot start (missing ConfigMap/Secret, ...)
    CRASH = "crash"  # the server crashes for another reason
    REGISTRY = "registry"  # MLflow or the artifact store did not answer while pods loaded
    SLOW = "slow"  # still loading, no error: the model loads slower than the deadline
    PAUSED = "paused"  # spec.paused
    NO_PODS = "no-pods"  # zero replicas: no pod can serve the version
    UNKNOWN = "unknown"  # nothing seen that says why


@dataclass(frozen=True)
class PodView:
    """The parts of one pod of the Deployment that say why it is (not) serving."""

    name: str
    version: str | None  # MODEL_VERSION of its serving container
    ready: bool = False
    unschedulable: str | None = None  # PodScheduled=False: the scheduler's message
    waiting: str | None = None  # the serving container's waiting reason (ImagePullBackOff, ...)
    waiting_message: str | None = None
    terminated: str | None = None  # the last termination's reason (OOMKilled, Error)
    restarts: int = 0
    ready_detail: Mapping[str, Any] | None = None  # GET /healthz/ready's JSON, when asked
    canary: bool = False  # a pod of the canary Deployment


IMAGE_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "RegistryUnavailable",
    }
)
CONFIG_REASONS = frozenset(
    {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}
)
# A model load error that says the registry or the artifact store did not answer (or refused
# our credentials), not that the model is broken.
INFRA_LOAD_ERROR = re.compile(
    r"connection refused|connection reset|connect(ion)? ?timeout|timed out|timeout|unreachable"
    r"|name or service not known|name resolution|nodename nor servname|max retries exceeded"
    r"|remote ?disconnected|temporarily unavailable|service unavailable|bad gateway"
    r"|gateway time|\b50[234]\b|\b429\b|too many requests|endpointconnectionerror"
    r"|nocredentialserror|credentials|accessdenied|access denied|\b40[13]\b|forbidden"
    r"|unauthori[sz]ed|slowdown|backed off|urlerror|connectionerror|newconnectionerror",
    re.IGNORECASE,
)


def classify_load_error(message: str) -> Cause:
    """A model load error, as /healthz/ready's ``last_error`` says it: MLflow or the artifact
    store being away (REGISTRY) or the model itself (MODEL)."""
    return Cause.REGISTRY if INFRA_LOAD_ERROR.search(message) else Cause.MODEL


# When several new pods tell different stories, the strongest evidence wins.
_PRIORITY = [
    Cause.MODEL,
    Cause.CAPACITY,
    Cause.IMAGE,
    Cause.CONFIG,
    Cause.REGISTRY,
    Cause.CRASH,
    Cause.SLOW,
    Cause.UNKNOWN,
]


def _pod_cause(pod: PodView) -> tuple[Cause, str]:
    if pod.unschedulable is not None:
        return Cause.CAPACITY, f"pod {pod.name} cannot be scheduled: {pod.unschedulable}"
    if pod.waiting in IMAGE_REASONS:
        return Cause.IMAGE, f"pod {pod.name}: {pod.waiting} {pod.waiting_message or ''}".strip()
    if pod.waiting in CONFIG_REASONS:
        return Cause.CONFIG, f"pod {pod.name}: {pod.waiting} {pod.waiting_message or ''}".strip()
    if pod.terminated == "OOMKilled":
        return Cause.MODEL, f"pod {pod.name} ran out of memory loading the model (OOMKilled)"
    detail = pod.ready_detail or {}
    error = detail.get("last_error")
    if not pod.ready and isinstance(error, str) and error:
        return classify_load_error(error), f"pod {pod.name} cannot load the model: {error}"
    if pod.waiting == "CrashLoopBackOff" or pod.terminated:
        last = f" (last exit: {pod.terminated})" if pod.terminated else ""
        return Cause.CRASH, f"pod {pod.name} keeps crashing{last}, {pod.restarts} restarts"
    if not pod.ready and detail.get("status") == "loading":
        return Cause.SLOW, f"pod {pod.name} is still loading the model, no error so far"
    return Cause.UNKNOWN, f"pod {pod.name} is not ready"


def classify(
    body: Mapping[str, Any], pods: Sequence[PodView] | None, version: str
) -> tuple[Cause, str]:
    """Why the pods of ``version`` are not available: the cause and a one-line detail."""
    spec = body.get("spec") or {}
    if spec.get("paused"):
        return Cause.PAUSED, "the Deployment is paused (spec.paused): nothing rolls"
    if spec.get("replicas", 1) == 0:
        return Cause.NO_PODS, "the Deployment has 0 replicas: no pod has served the version"
    for condition in (body.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "ReplicaFailure" and condition.get("status") == "True":
            return Cause.CAPACITY, (
                f"pods cannot be created: {condition.get('reason', '')}: "
                f"{condition.get('message', '')}"
            ).strip(": ")
    if pods is None:
        return Cause.UNKNOWN, "the pods could not be read"
    new = [p for p in pods if p.version == version and not p.ready]
    if not new:
        if any(p.version == version for p in pods):
            return Cause.UNKNOWN, f"the pods of version {version} are ready but not available"
        return Cause.CAPACITY, f"no pod of version {version} was created"
    found = [_pod_cause(p) for p in new]
    found.sort(key=lambda c: _PRIORITY.index(c[0]))
    return found[0]


def served_by_old_pods(pods: Sequence[PodView] | None, version: str) -> str | None:
    """The one version the ready pods of older ReplicaSets report serving, if they agree."""
    seen = {
        str(p.ready_detail.get("model_version"))
        for p in pods or []
        if p.ready
        and p.version != version
        and p.ready_detail
        and p.ready_detail.get("model_version")
    }
    return seen.pop() if len(seen) == 1 else None


def deadline_seconds(body: Mapping[str, Any], attempt: int = 0) -> float:
    """How long one try may take: the Deployment's ``mlkube.io/rollout-deadline-seconds``,
    else its progressDeadlineSeconds; doubled for each retry (a model slower to load than the
    deadline gets the time it needs)."""
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    spec = body.get("spec") or {}
    base = _int(annotations.get(ANNOTATION_ROLLOUT_DEADLINE)) or _int(
        spec.get("progressDeadlineSeconds"), DEFAULT_DEADLINE_SECONDS
    )
    return float(base * 2 ** max(attempt, 0))


def load_error_confirm_seconds(body: Mapping[str, Any]) -> float:
    """How long every new pod must report the same model load error before the version is
    failed: the Deployment's ``mlkube.io/load-error-confirm-seconds``, else 30; 0 turns the
    shortcut off (the deadline decides)."""
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(ANNOTATION_LOAD_ERROR_CONFIRM)
    try:
        seconds = float(value) if value is not None else DEFAULT_LOAD_ERROR_CONFIRM_SECONDS
    except ValueError:
        return DEFAULT_LOAD_ERROR_CONFIRM_SECONDS
    return seconds if seconds >= 0 else DEFAULT_LOAD_ERROR_CONFIRM_SECONDS


def model_load_failure(pods: Sequence[PodView], version: str) -> str | None:
    """The detail when every pod of ``version`` is unready and its readiness reports one and
    the same model load error (not the registry's, not the node's, not the image's), else None.
    """
    new = [p for p in pods if p.version == version and not p.canary]
    errors = set()
    for pod in new:
        error = (pod.ready_detail or {}).get("last_error")
        if pod.ready or not isinstance(error, str) or not error:
            return None
        if classify_load_error(error) is not Cause.MODEL:
            return None
        errors.add(error)
    if len(errors) != 1:
        return None
    names = ", ".join(sorted(p.name for p in new))
    return f"pod(s) {names} cannot load the model: {errors.pop()}"
