"""The rollout record: the operator's state, kept in a serving Deployment's metadata.

It is what a CRD's status would be, written as annotations so that no CRD has to be installed:
writing it restarts no pod, and ``kubectl describe``, ``make status`` and the end-to-end test
read it. This module is its one owner: the fields and their annotation keys, parsing, the
named transitions the operator makes, and the one line people read. The operator
(``rollout.plan``) decides which transition to make, and ``rollout.patches.record_patch`` writes
it (the changes only); nothing else writes the record.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlkube.core.deployment import format_time, parse_time, pinned_version
from mlkube.core.names import (
    ANNOTATION_FAILED_VERSION,
    ANNOTATION_LAST_FAILED_VERSION,
    ANNOTATION_LOAD_ERROR_SINCE,
    ANNOTATION_REGISTRY_UNAVAILABLE,
    ANNOTATION_ROLLOUT_ATTEMPT,
    ANNOTATION_ROLLOUT_HOLD,
    ANNOTATION_ROLLOUT_REASON,
    ANNOTATION_ROLLOUT_RETRY_AT,
    ANNOTATION_ROLLOUT_STARTED,
    ANNOTATION_ROLLOUT_STATUS,
    ANNOTATION_ROLLOUT_TARGET,
    ANNOTATION_ROLLOUT_TEMPLATE,
    ANNOTATION_STABLE_VERSION,
)
from mlkube.core.registry import short

MAX_REASON = 480  # an annotation value people read in `kubectl describe`


class RolloutPhase(enum.StrEnum):
    PROGRESSING = "progressing"  # the template is pinned to the target; the deadline runs
    SUCCEEDED = "succeeded"  # pods serve the target: it is the stable version
    WAITING = "waiting"  # failed for a reason other than the model: retried later
    FAILED = "failed"  # the model is the cause (or retries ran out): back on the stable one
    CANARY = "canary"  # one pod of the target runs beside the stable ones, to be compared


# Field -> annotation key, in the order people read them.
KEYS = {
    "phase": ANNOTATION_ROLLOUT_STATUS,
    "target": ANNOTATION_ROLLOUT_TARGET,
    "stable": ANNOTATION_STABLE_VERSION,
    "started": ANNOTATION_ROLLOUT_STARTED,
    "reason": ANNOTATION_ROLLOUT_REASON,
    "template": ANNOTATION_ROLLOUT_TEMPLATE,
    "failed": ANNOTATION_FAILED_VERSION,
    "last_failed": ANNOTATION_LAST_FAILED_VERSION,
    "load_error_since": ANNOTATION_LOAD_ERROR_SINCE,
    "registry_unavailable": ANNOTATION_REGISTRY_UNAVAILABLE,
    "attempt": ANNOTATION_ROLLOUT_ATTEMPT,
    "retry_at": ANNOTATION_ROLLOUT_RETRY_AT,
}
# Set by people (or the chart), never by the operator: read, not written.
HOLD = ANNOTATION_ROLLOUT_HOLD


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _phase(value: Any) -> RolloutPhase | None:
    try:
        return RolloutPhase(value)
    except ValueError:
        return None


@dataclass(frozen=True)
class RolloutRecord:
    phase: RolloutPhase | None = None
    target: str | None = None  # the version being rolled out (or, once ended, the one served)
    stable: str | None = None  # the last version a completed rollout had pods serve
    started: dt.datetime | None = None  # the operator's patch: its deadline counts from here
    reason: str | None = None  # one line: why the record says what it says
    template: str | None = None  # the pod template's hash, pin left out (rollout.patches)
    failed: str | None = None  # not rolled to again until the alias moves
    last_failed: str | None = None  # for people, until a newer version succeeds
    load_error_since: dt.datetime | None = None  # every new pod reports one load error since
    registry_unavailable: str | None = None  # "since <time>: <error>" while MLflow is away
    attempt: int = 0  # failed tries not caused by the model
    retry_at: dt.datetime | None = None  # the next try (phase waiting)
    hold: str | None = None  # who holds the Deployment and why (people's, never written)

    # -- reading and writing -------------------------------------------------------------------

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> RolloutRecord:
        """The record of a Deployment body (an empty record when it has none)."""
        annotations = (body.get("metadata") or {}).get("annotations") or {}

        def text(field: str) -> str | None:
            return annotations.get(KEYS[field]) or None

        phase = _phase(text("phase"))
        stable, target = text("stable"), text("target")
        # Records written by operator v1 (before 0.4) had neither; remove this with 0.6.
        if stable is None and phase is RolloutPhase.SUCCEEDED:
            stable = pinned_version(body)
        if target is None and phase is RolloutPhase.PROGRESSING:
            target = pinned_version(body)
        return cls(
            phase=phase,
            target=target,
            stable=stable,
            started=parse_time(text("started")),
            reason=text("reason"),
            template=text("template"),
            failed=text("failed"),
            last_failed=text("last_failed"),
            load_error_since=parse_time(text("load_error_since")),
            registry_unavailable=text("registry_unavailable"),
            attempt=_int(text("attempt")),
            retry_at=parse_time(text("retry_at")),
            hold=annotations.get(HOLD) or None,
        )

    def annotations(self) -> dict[str, str | None]:
        """Every field the operator writes, as annotation key -> value (None: absent)."""
        values: dict[str, str | None] = {}
        for field, key in KEYS.items():
            value = getattr(self, field)
            if isinstance(value, dt.datetime):
                value = format_time(value)
            elif field == "attempt":
                value = str(value) if value else None
            values[key] = None if value is None else str(value)
        return values

    def describe(self) -> str:
        """The record as one line, e.g. ``failed: target 3, stable 1 (...reason...)`` or
        ``succeeded: target 5, stable 5, last failed 6 (...)``."""
        if self == RolloutRecord():
            return "no rollout record (the operator has not managed this Deployment yet)"
        details = [
            f"{label} {value}"
            for label, value in (
                ("target", self.target),
                ("stable", self.stable),
                ("last failed", self.last_failed),
                ("since", format_time(self.started) if self.started else None),
            )
            if value is not None
        ]
        phase = self.phase.value if self.phase else "unknown"
        line = f"{phase}: {', '.join(details)}" if details else phase
        if self.reason:
            line += f" ({self.reason})"
        if self.registry_unavailable:
            line += f"; WAITING ON THE REGISTRY, unavailable {self.registry_unavailable}"
        if self.hold is not None:
            line = f"HELD by {HOLD}={self.hold!r}; last record: {line}"
        return line

    # -- the transitions the operator makes ------------------------------------------------------

    def noted(self, reason: str | None = None, **fields: Any) -> RolloutRecord:
        """The same record with a new reason and/or fields (a note: the pods are untouched)."""
        if reason is not None:
            fields["reason"] = short(reason, MAX_REASON)
        return dataclasses.replace(self, **fields)

    def rolling(
        self, version: str, now: dt.datetime, why: str, template: str, attempt: int = 0
    ) -> RolloutRecord:
        """The template is pinned to ``version`` now; its deadline starts."""
        return self.noted(
            why,
            phase=RolloutPhase.PROGRESSING,
            target=version,
            started=now,
            template=template,
            failed=None,
            attempt=attempt,
            retry_at=None,
            load_error_since=None,
        )

    def succeeded(self, version: str, message: str) -> RolloutRecord:
        """Pods serve ``version``: it becomes the stable version. The last failed version is
        forgotten once a newer one succeeds."""
        newer = self.last_failed is not None and _int(version) > _int(self.last_failed)
        return self.noted(
            message,
            phase=RolloutPhase.SUCCEEDED,
            stable=version,
            attempt=0,
            retry_at=None,
            failed=None,
            load_error_since=None,
            last_failed=None if newer else self.last_failed,
        )

    def failed_on(self, version: str, restored: str | None, message: str) -> RolloutRecord:
        """The model failed (or retries ran out): back on ``restored``; ``version`` is not
        rolled to again until the alias moves."""
        return self.noted(
            message,
            phase=RolloutPhase.FAILED,
            target=version,
            stable=restored,
            failed=version,
            last_failed=version,
            attempt=0,
            retry_at=None,
            load_error_since=None,
        )

    def waiting(
        self, version: str, message: str, attempt: int, retry_at: dt.datetime
    ) -> RolloutRecord:
        """Not the model's fault: back on the stable version, retried at ``retry_at``."""
        return self.noted(
            message,
            phase=RolloutPhase.WAITING,
            target=version,
            attempt=attempt,
            retry_at=retry_at,
            load_error_since=None,
        )

    def canary(self, version: str, now: dt.datetime, message: str) -> RolloutRecord:
        """One pod of ``version`` runs beside the stable ones until it is judged."""
        return self.noted(
            message,
            phase=RolloutPhase.CANARY,
            target=version,
            started=now,
            failed=None,
            attempt=0,
            retry_at=None,
        )

    def canary_failed(self, version: str, message: str) -> RolloutRecord:
        """The canary of ``version`` failed: the main Deployment never left the stable one."""
        return self.noted(message, phase=RolloutPhase.FAILED, failed=version)

    def settled_on(self, version: str, message: str) -> RolloutRecord:
        """The alias moved off the failed version back to ``version``, which the pods serve:
        the record names it; the failed version stays visible as the last failed one."""
        return self.noted(
            message,
            phase=RolloutPhase.SUCCEEDED,
            target=version,
            stable=version,
            failed=None,
            last_failed=self.failed,
        )
