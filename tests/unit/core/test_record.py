"""The rollout record (mlkube.core.record.RolloutRecord): read from a Deployment body, written
back as annotations, the changes between two records, the line people read, and each named
transition the operator makes. The decisions that choose a transition are tested in
``tests/unit/rollout/test_plan.py``."""

from __future__ import annotations

import dataclasses
import datetime as dt

from mlkube.core.record import MAX_REASON, RolloutPhase, RolloutRecord
from tests.unit.rollout.builders import T0, deployment, stamp

LATER = T0 + dt.timedelta(seconds=90)

# A record in the middle of a rollout of version 3 from the stable version 2, whose earlier
# version 4 had failed, with everything a transition may clear set.
BUSY = RolloutRecord(
    phase=RolloutPhase.PROGRESSING,
    target="3",
    stable="2",
    started=T0,
    reason="alias production -> 3",
    template="abc",
    failed="4",
    last_failed="4",
    load_error_since=LATER,
    registry_unavailable="since 2026-03-01T12:00:00Z: connection refused",
    attempt=1,
    retry_at=LATER,
)


# -- reading and writing -------------------------------------------------------------------------


def test_of_reads_every_field_from_the_annotations() -> None:
    written = {k: v for k, v in BUSY.annotations().items() if v is not None}
    body = deployment("3", status=None, annotations=written)
    body["metadata"]["annotations"]["mlkube.io/rollout-hold"] = "incident 42"
    assert RolloutRecord.of(body) == dataclasses.replace(BUSY, hold="incident 42")


def test_of_a_deployment_without_a_record_is_the_empty_record() -> None:
    assert RolloutRecord.of(deployment("1", status=None)) == RolloutRecord()
    assert RolloutRecord.of({}) == RolloutRecord()
    assert RolloutRecord.of({"metadata": {"annotations": None}}) == RolloutRecord()


def test_of_takes_unreadable_values_as_absent() -> None:
    body = deployment("1", status="rolling-ish", annotations={
        "mlkube.io/rollout-attempt": "two",
        "mlkube.io/rollout-started": "yesterday",
        "mlkube.io/rollout-target": "",
    })  # fmt: skip
    record = RolloutRecord.of(body)
    assert (record.phase, record.attempt, record.started, record.target) == (None, 0, None, None)


def test_a_v1_record_takes_its_versions_from_the_pin() -> None:
    assert RolloutRecord.of(deployment("7")).stable == "7"  # succeeded: the pin is stable
    assert RolloutRecord.of(deployment("7", status="progressing")).target == "7"
    assert RolloutRecord.of(deployment("7", status="failed")).stable is None


def test_annotations_name_every_written_field_and_leave_out_the_hold() -> None:
    written = BUSY.annotations()
    assert written == {
        "mlkube.io/rollout-status": "progressing",
        "mlkube.io/rollout-target": "3",
        "mlkube.io/stable-model-version": "2",
        "mlkube.io/rollout-started": "2026-03-01T12:00:00Z",
        "mlkube.io/rollout-reason": "alias production -> 3",
        "mlkube.io/rollout-template": "abc",
        "mlkube.io/failed-model-version": "4",
        "mlkube.io/last-failed-model-version": "4",
        "mlkube.io/rollout-load-error-since": stamp(LATER),
        "mlkube.io/registry-unavailable": "since 2026-03-01T12:00:00Z: connection refused",
        "mlkube.io/rollout-attempt": "1",
        "mlkube.io/rollout-retry-at": stamp(LATER),
    }
    assert "mlkube.io/rollout-hold" not in RolloutRecord(hold="by hand").annotations()
    empty = RolloutRecord().annotations()
    assert set(empty) == set(written)
    assert set(empty.values()) == {None}  # attempt 0 is not written either


# -- the line people read ------------------------------------------------------------------------


def test_describe_says_phase_versions_and_reason() -> None:
    record = RolloutRecord(phase=RolloutPhase.FAILED, target="3", stable="1", reason="no load")
    assert record.describe() == "failed: target 3, stable 1 (no load)"
    assert BUSY.describe() == (
        "progressing: target 3, stable 2, last failed 4, since 2026-03-01T12:00:00Z "
        "(alias production -> 3); WAITING ON THE REGISTRY, unavailable since "
        "2026-03-01T12:00:00Z: connection refused"
    )


def test_describe_without_a_record_a_phase_or_details() -> None:
    assert RolloutRecord().describe().startswith("no rollout record")
    assert RolloutRecord(reason="odd").describe() == "unknown (odd)"
    assert RolloutRecord(phase=RolloutPhase.SUCCEEDED).describe() == "succeeded"


def test_describe_puts_a_hold_first() -> None:
    held = RolloutRecord(phase=RolloutPhase.SUCCEEDED, stable="1", hold="incident 42")
    assert held.describe() == (
        "HELD by mlkube.io/rollout-hold='incident 42'; last record: succeeded: stable 1"
    )


# -- the transitions -----------------------------------------------------------------------------


def test_noted_changes_the_reason_and_the_given_fields_only() -> None:
    noted = BUSY.noted("paused", attempt=2)
    assert noted == dataclasses.replace(BUSY, reason="paused", attempt=2)
    assert BUSY.noted(target="5").reason == BUSY.reason  # no reason given: kept
    assert len(BUSY.noted("x" * 1000).reason or "") == MAX_REASON


def test_rolling_starts_a_try_of_the_version_now() -> None:
    rolled = BUSY.rolling("5", LATER, "alias production -> 5", "def", attempt=2)
    assert rolled == RolloutRecord(
        phase=RolloutPhase.PROGRESSING,
        target="5",
        stable="2",  # kept: what the pods served last
        started=LATER,
        reason="alias production -> 5",
        template="def",
        failed=None,  # the alias moved on
        last_failed="4",  # still shown
        load_error_since=None,
        registry_unavailable=BUSY.registry_unavailable,
        attempt=2,
        retry_at=None,
    )
    assert BUSY.rolling("5", LATER, "why", "def").attempt == 0


def test_succeeded_makes_the_version_stable() -> None:
    done = BUSY.succeeded("3", "rolled out")
    assert (done.phase, done.target, done.stable, done.reason) == (
        RolloutPhase.SUCCEEDED, "3", "3", "rolled out")  # fmt: skip
    assert (done.failed, done.attempt, done.retry_at, done.load_error_since) == (
        None,
        0,
        None,
        None,
    )
    assert done.last_failed == "4"  # 3 is older than the failed 4: still shown
    assert BUSY.succeeded("5", "rolled out").last_failed is None  # a newer one succeeded
    assert (done.started, done.template) == (BUSY.started, BUSY.template)


def test_failed_on_goes_back_to_the_restored_version_and_remembers_the_failure() -> None:
    failed = BUSY.failed_on("3", "2", "cannot load")
    assert (failed.phase, failed.target, failed.stable, failed.reason) == (
        RolloutPhase.FAILED, "3", "2", "cannot load")  # fmt: skip
    assert (failed.failed, failed.last_failed) == ("3", "3")
    assert (failed.attempt, failed.retry_at, failed.load_error_since) == (0, None, None)
    assert BUSY.failed_on("3", None, "first pin").stable is None  # nothing known to serve


def test_waiting_schedules_the_retry_and_keeps_the_stable_version() -> None:
    retry_at = LATER + dt.timedelta(seconds=60)
    waiting = BUSY.waiting("3", "Insufficient cpu", 2, retry_at)
    assert (waiting.phase, waiting.target, waiting.stable) == (RolloutPhase.WAITING, "3", "2")
    assert (waiting.attempt, waiting.retry_at, waiting.load_error_since) == (2, retry_at, None)
    assert waiting.reason == "Insufficient cpu"
    assert waiting.failed == "4"  # not the model's fault: nothing new is failed


def test_canary_starts_the_canary_of_the_version_now() -> None:
    canary = BUSY.canary("5", LATER, "one pod of version 5")
    assert (canary.phase, canary.target, canary.started, canary.stable) == (
        RolloutPhase.CANARY, "5", LATER, "2")  # fmt: skip
    assert (canary.failed, canary.attempt, canary.retry_at) == (None, 0, None)
    assert canary.reason == "one pod of version 5"


def test_canary_failed_marks_the_version_and_leaves_the_rest() -> None:
    canary = BUSY.canary("5", LATER, "canary")
    failed = canary.canary_failed("5", "error rate 25%")
    assert (failed.phase, failed.failed, failed.reason) == (
        RolloutPhase.FAILED, "5", "error rate 25%")  # fmt: skip
    assert (failed.target, failed.stable, failed.last_failed) == ("5", "2", "4")


def test_settled_on_names_what_the_pods_serve_and_keeps_the_failure_visible() -> None:
    failed = BUSY.failed_on("6", "5", "cannot load")
    settled = failed.settled_on("5", "alias moved back")
    assert (settled.phase, settled.target, settled.stable, settled.reason) == (
        RolloutPhase.SUCCEEDED, "5", "5", "alias moved back")  # fmt: skip
    assert (settled.failed, settled.last_failed) == (None, "6")
    assert settled.describe().startswith("succeeded: target 5, stable 5, last failed 6")


def test_a_transition_round_trips_through_the_annotations() -> None:
    record = RolloutRecord().rolling("2", T0, "alias production -> 2", "abc")
    body = deployment("2", status=None, annotations={
        k: v for k, v in record.annotations().items() if v is not None})  # fmt: skip
    assert RolloutRecord.of(body) == record
