"""Canary rollouts, as pure functions: the canary Deployment, what the serving pods' /metrics
say, and the verdict.

A Deployment annotated ``mlkube.io/rollout-strategy: canary`` is not rolled at once when its
alias moves: first one pod of the new version runs in ``<name>-canary``, a Deployment with the
same selector labels (so the same Service sends it a share of the traffic, as Flagger does),
owned by the main Deployment (deleted with it) and without the ``mlkube.io/model-name`` label (so
the operator never manages it as a serving Deployment). After ``mlkube.io/canary-seconds`` the
canary and the stable pods are compared from their own ``/metrics`` (``mlkube_serve_*``, see
``service/metrics.py``): request error rate (5xx), p99 latency, and the distribution of
predicted classes. Pass: the main Deployment rolls (the usual rollout, with its deadline) and the
canary goes. Fail: the canary goes, the version is tagged failed with the measured reason, a
Warning Event says it, and (``mlkube.io/canary-move-alias-back: "true"``) the alias goes back to
the stable version.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlkube.core.names import LABEL_MODEL_NAME, PREFIX

ANNOTATION_STRATEGY = f"{PREFIX}/rollout-strategy"  # rolling (default) | canary
ANNOTATION_CANARY_SECONDS = f"{PREFIX}/canary-seconds"
ANNOTATION_MAX_ERROR_RATE = f"{PREFIX}/canary-max-error-rate"  # allowed increase, absolute
ANNOTATION_MAX_P99_RATIO = f"{PREFIX}/canary-max-p99-ratio"  # canary p99 / stable p99
ANNOTATION_MAX_CLASS_SHIFT = f"{PREFIX}/canary-max-class-shift"  # total variation distance
ANNOTATION_MIN_REQUESTS = f"{PREFIX}/canary-min-requests"
ANNOTATION_MOVE_ALIAS_BACK = f"{PREFIX}/canary-move-alias-back"
LABEL_CANARY_OF = f"{PREFIX}/canary-of"
STRATEGY_CANARY = "canary"

REQUESTS = "mlkube_serve_requests_total"
LATENCY_BUCKET = "mlkube_serve_request_duration_seconds_bucket"
PREDICTIONS = "mlkube_serve_predictions_total"


@dataclass(frozen=True)
class CanaryPolicy:
    seconds: float = 300.0
    max_error_rate: float = 0.01  # the canary's 5xx rate may exceed the stable one by this much
    max_p99_ratio: float = 1.5
    max_class_shift: float = 0.2  # total variation distance between the class distributions
    min_requests: int = 50  # fewer canary requests: not enough to judge
    move_alias_back: bool = False
    promote_inconclusive: bool = True  # too little traffic to judge: roll on (the deadline guards)


def _float(value: Any, default: float) -> float:
    try:
        result = float(value)
    except (TypeError, ValueError):
        return default
    return result if math.isfinite(result) and result >= 0 else default


def strategy(body: Mapping[str, Any]) -> str:
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    return str(annotations.get(ANNOTATION_STRATEGY) or "rolling").strip().lower()


def policy_of(body: Mapping[str, Any]) -> CanaryPolicy:
    """The Deployment's canary settings (its annotations; defaults for the rest)."""
    a = (body.get("metadata") or {}).get("annotations") or {}
    d = CanaryPolicy()
    return CanaryPolicy(
        seconds=_float(a.get(ANNOTATION_CANARY_SECONDS), d.seconds),
        max_error_rate=_float(a.get(ANNOTATION_MAX_ERROR_RATE), d.max_error_rate),
        max_p99_ratio=_float(a.get(ANNOTATION_MAX_P99_RATIO), d.max_p99_ratio),
        max_class_shift=_float(a.get(ANNOTATION_MAX_CLASS_SHIFT), d.max_class_shift),
        min_requests=int(_float(a.get(ANNOTATION_MIN_REQUESTS), d.min_requests)),
        move_alias_back=str(a.get(ANNOTATION_MOVE_ALIAS_BACK, "")).lower() == "true",
    )


def canary_name(name: str) -> str:
    return f"{name}-canary"


def manifest(body: Mapping[str, Any], template: Mapping[str, Any]) -> dict[str, Any]:
    """The canary Deployment of ``body``: one replica of ``template`` (the main pod template
    pinned to the new version), the same selector, owned by the main Deployment."""
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k != LABEL_MODEL_NAME}
    labels[LABEL_CANARY_OF] = str(meta.get("name"))
    owner = {
        "apiVersion": body.get("apiVersion", "apps/v1"),
        "kind": body.get("kind", "Deployment"),
        "name": meta.get("name"),
        "uid": meta.get("uid"),
        "controller": False,
        "blockOwnerDeletion": False,
    }
    canary_template = copy.deepcopy(dict(template))
    canary_template.setdefault("metadata", {}).setdefault("labels", {})[LABEL_CANARY_OF] = str(
        meta.get("name")
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": canary_name(str(meta.get("name"))),
            "namespace": meta.get("namespace") or "default",
            "labels": labels,
            "ownerReferences": [owner] if meta.get("uid") else [],
        },
        "spec": {
            "replicas": 1,
            "selector": copy.deepcopy(spec.get("selector") or {}),
            "template": canary_template,
        },
    }


# -- /metrics --------------------------------------------------------------------------------

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass
class Sample:
    """What one or more serving pods counted (requests, not probes)."""

    requests: float = 0.0
    errors: float = 0.0  # 5xx answers
    buckets: dict[float, float] = field(default_factory=dict)  # le -> cumulative count
    classes: dict[str, float] = field(default_factory=dict)  # predicted class -> rows

    def __add__(self, other: Sample) -> Sample:
        out = Sample(self.requests + other.requests, self.errors + other.errors)
        for le in {*self.buckets, *other.buckets}:
            out.buckets[le] = self.buckets.get(le, 0.0) + other.buckets.get(le, 0.0)
        for label in {*self.classes, *other.classes}:
            out.classes[label] = self.classes.get(label, 0.0) + other.classes.get(label, 0.0)
        return out

    def __sub__(self, other: Sample) -> Sample:
        """Counts since ``other`` (a baseline of the same pods); never negative (a restart)."""
        out = Sample(max(self.requests - other.requests, 0), max(self.errors - other.errors, 0))
        for le, count in self.buckets.items():
            out.buckets[le] = max(count - other.buckets.get(le, 0.0), 0.0)
        for label, rows in self.classes.items():
            out.classes[label] = max(rows - other.classes.get(label, 0.0), 0.0)
        return out


def parse_metrics(text: str) -> Sample:
    """A serving pod's ``/metrics`` (Prometheus text format) as a :class:`Sample`."""
    sample = Sample()
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        name, _, raw_labels, raw_value = match.groups()
        try:
            value = float(raw_value)
        except ValueError:
            continue
        labels = dict(_LABEL.findall(raw_labels or ""))
        if name == REQUESTS:
            sample.requests += value
            if labels.get("status", "").startswith("5"):
                sample.errors += value
        elif name == LATENCY_BUCKET:
            le = float(labels.get("le", "inf").replace("+Inf", "inf"))
            sample.buckets[le] = sample.buckets.get(le, 0.0) + value
        elif name == PREDICTIONS:
            label = labels.get("label", "")
            sample.classes[label] = sample.classes.get(label, 0.0) + value
    return sample


def quantile(buckets: Mapping[float, float], q: float) -> float | None:
    """``histogram_quantile``: linear interpolation within the bucket holding the rank."""
    ordered = sorted(buckets.items())
    if not ordered or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    previous_le, previous_count = 0.0, 0.0
    for le, count in ordered:
        if count >= rank:
            if math.isinf(le):
                return previous_le
            if count == previous_count:
                return le
            return previous_le + (le - previous_le) * (rank - previous_count) / (
                count - previous_count
            )
        previous_le, previous_count = le, count
    return previous_le


def class_shift(a: Mapping[str, float], b: Mapping[str, float]) -> float | None:
    """Total variation distance between two class distributions (0 same, 1 disjoint)."""
    total_a, total_b = sum(a.values()), sum(b.values())
    if total_a <= 0 or total_b <= 0:
        return None
    return 0.5 * sum(abs(a.get(k, 0) / total_a - b.get(k, 0) / total_b) for k in {*a, *b})


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reason: str
    measures: Mapping[str, float | None] = field(default_factory=dict)
    inconclusive: bool = False


def judge(canary: Sample, stable: Sample, policy: CanaryPolicy) -> Verdict:
    """Compare the canary with the stable pods over the same window."""
    measures: dict[str, float | None] = {
        "canary_requests": canary.requests,
        "stable_requests": stable.requests,
    }
    if canary.requests < policy.min_requests:
        reason = (
            f"the canary answered {canary.requests:.0f} requests, fewer than the "
            f"{policy.min_requests} needed to judge it"
        )
        return Verdict(policy.promote_inconclusive, reason, measures, inconclusive=True)
    failures = []
    canary_errors = canary.errors / canary.requests
    stable_errors = stable.errors / stable.requests if stable.requests else 0.0
    measures.update(canary_error_rate=canary_errors, stable_error_rate=stable_errors)
    if canary_errors > stable_errors + policy.max_error_rate:
        failures.append(
            f"error rate {canary_errors:.2%} vs {stable_errors:.2%} stable "
            f"(allowed +{policy.max_error_rate:.2%})"
        )
    canary_p99, stable_p99 = quantile(canary.buckets, 0.99), quantile(stable.buckets, 0.99)
    measures.update(canary_p99=canary_p99, stable_p99=stable_p99)
    if canary_p99 is not None and stable_p99 and canary_p99 > stable_p99 * policy.max_p99_ratio:
        failures.append(
            f"p99 latency {canary_p99 * 1000:.1f} ms vs {stable_p99 * 1000:.1f} ms stable "
            f"(allowed x{policy.max_p99_ratio:g})"
        )
    shift = class_shift(canary.classes, stable.classes)
    measures["class_shift"] = shift
    if shift is not None and shift > policy.max_class_shift:
        failures.append(
            f"predicted classes shifted by {shift:.2f} (total variation; allowed "
            f"{policy.max_class_shift:g})"
        )
    if failures:
        return Verdict(False, "canary worse than stable: " + "; ".join(failures), measures)
    p99 = f"{canary_p99 * 1000:.1f} ms" if canary_p99 is not None else "n/a"
    return Verdict(
        True,
        f"canary as good as stable over {canary.requests:.0f} requests (error rate "
        f"{canary_errors:.2%}, p99 {p99}, class shift "
        f"{'n/a' if shift is None else f'{shift:.2f}'})",
        measures,
    )
