"""The operator's decisions (rollout.plan: ``parse`` and ``decide``), as pure functions: no API
server, no MLflow.

Two kinds of tests: one decision on a Deployment as it stands (the patch applied alone, with
:func:`~tests.unit.rollout.builders.patched`), and walks of a Deployment through the operator's
own patches (applied as the API server would, generation bump included) and the controller's
status changes, at explicit times (the numbered items of issue #13 and the cases of #20).
Why a rollout is not completing is tested in ``test_diagnosis.py``; the patches themselves in
``test_patches.py``; the record in ``tests/unit/core/test_record.py``."""

from __future__ import annotations

import copy
import datetime as dt

import pytest

from mlkube.core import deployment as readers
from mlkube.core.record import RolloutPhase, RolloutRecord
from rollout import diagnosis, patches, plan
from rollout.plan import AliasTarget, Kind
from tests.unit.rollout.builders import (
    KEY_TAG,
    MODEL,
    MODEL_ERROR,
    T0,
    UNPICKLING_ERROR,
    apply,
    bump,
    controller_complete,
    controller_deadline,
    controller_progressing,
    deployment,
    failing_pods,
    new_pod_cannot_load,
    patched,
    record,
    rolling,
    stamp,
    tagged,
)

# -- parsing a Deployment -----------------------------------------------------------------------


def test_parse_reads_label_alias_and_pin() -> None:
    watched = plan.parse(
        deployment(
            "7", previous="6", alias="staging", status="succeeded", sidecar=True, deadline=None
        )
    )
    assert watched == plan.Watched(
        namespace="mlkube",
        name="serving",
        model_name=MODEL,
        alias="staging",
        pinned="7",
        record=RolloutRecord(
            phase=RolloutPhase.SUCCEEDED,
            failed=None,
            stable="7",  # a v1 record: the succeeded pin is the stable version
        ),
    )


def test_parse_defaults_alias_to_production_and_ignores_unlabelled() -> None:
    watched = plan.parse(deployment(status=None, sidecar=True, deadline=None))
    assert watched is not None
    assert watched.alias == "production"
    body = deployment(status=None, sidecar=True, deadline=None)
    del body["metadata"]["labels"]["mlkube.io/model-name"]
    assert plan.parse(body) is None


# -- one decision --------------------------------------------------------------------------------


def test_same_version_is_a_noop_without_patch() -> None:
    action = plan.decide(
        deployment("3", status="succeeded", sidecar=True, deadline=None), tagged("3", "succeeded")
    )
    assert action.kind is Kind.NOOP
    assert action.patch == []
    assert action.event is None


def test_new_alias_version_patches_only_the_pin() -> None:
    body = deployment("1", status="succeeded", sidecar=True, deadline=None)
    action = plan.decide(body, AliasTarget("2"))
    assert action.kind is Kind.ROLL
    assert (action.version, action.previous) == ("2", "1")
    after = patched(body, action)

    assert readers.pinned_version(after) == "2"
    template = after["spec"]["template"]
    assert template["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        "mlkube.io/model-version": "2",
    }
    assert after["metadata"]["annotations"]["mlkube.io/rollout-status"] == "progressing"
    # Everything else is byte-for-byte what it was.
    expected = copy.deepcopy(body)
    expected["spec"]["template"]["spec"]["containers"][0]["env"][1]["value"] = "2"
    expected["spec"]["template"]["metadata"] = template["metadata"]
    expected["metadata"]["annotations"] = after["metadata"]["annotations"]
    assert after == expected
    assert action.event is not None
    assert action.event.type == "Normal"


def test_unpinned_deployment_is_pinned() -> None:
    body = deployment(None, status=None, sidecar=True, deadline=None)
    action = plan.decide(body, AliasTarget("4"))
    assert action.kind is Kind.ROLL
    assert action.previous is None
    after = patched(body, action)
    env = after["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env[-1] == {"name": "MODEL_VERSION", "value": "4"}
    assert [v["name"] for v in env[:-1]] == ["MODEL_NAME", "LOG_LEVEL"]
    assert (
        "mlkube.io/previous-model-version"
        not in after["spec"]["template"]["metadata"]["annotations"]
    )
    assert after["spec"]["template"]["spec"]["containers"][1] == {
        "name": "sidecar",
        "image": "envoy:1",
    }


def test_pinning_a_template_without_env_or_annotations() -> None:
    body = deployment(None, status=None, sidecar=True, deadline=None)
    del body["spec"]["template"]["metadata"]
    del body["spec"]["template"]["spec"]["containers"][0]["env"]
    del body["metadata"]["annotations"]
    body["metadata"]["labels"]["mlkube.io/model-name"] = MODEL
    action = plan.decide(body, AliasTarget("1"))
    after = patched(body, action)
    assert after["spec"]["template"]["spec"]["containers"][0]["env"] == [
        {"name": "MODEL_VERSION", "value": "1"}
    ]
    assert after["spec"]["template"]["metadata"] == {
        "annotations": {"mlkube.io/model-version": "1"}
    }
    assert after["metadata"]["annotations"]["mlkube.io/rollout-status"] == "progressing"
    assert after["metadata"]["annotations"]["mlkube.io/rollout-target"] == "1"


def test_registry_down_changes_nothing_but_the_record_says_it_once() -> None:
    body = deployment("1", status="succeeded", sidecar=True, deadline=None)
    action = plan.decide(body, None, registry_ok=False, registry_error="connection refused")
    # The pods are left alone; the record and a Warning Event say the Deployment waits.
    assert action.kind is Kind.NOTE
    assert all(op["path"].startswith("/metadata/") for op in action.patch)
    assert [e.reason for e in action.events] == ["ModelRegistryUnavailable"]
    after = patched(body, action)
    assert after["spec"] == body["spec"]
    waiting = after["metadata"]["annotations"]["mlkube.io/registry-unavailable"]
    assert waiting.endswith(": connection refused")
    assert "WAITING ON THE REGISTRY" in RolloutRecord.of(after).describe()
    # Said once: the next decisions during the outage write nothing.
    again = plan.decide(after, None, registry_ok=False, registry_error="connection refused")
    assert again.kind is Kind.NOOP
    assert again.patch == []
    assert again.reason.startswith("the registry gave no answer (unreachable, or it refused")
    # The registry answers: the condition goes, with an Event saying so.
    back = plan.decide(after, AliasTarget("1"))
    assert [e.reason for e in back.events] == ["ModelRegistryAvailable"]
    assert "mlkube.io/registry-unavailable" not in patched(after, back)["metadata"]["annotations"]


def test_alias_not_set_says_so_not_that_the_registry_failed() -> None:
    action = plan.decide(
        deployment("1", status="succeeded", sidecar=True, deadline=None), None, registry_ok=True
    )
    assert action.kind is Kind.NOOP
    assert action.patch == []
    assert "alias production of model iris-classifier is not set" in action.reason
    assert "registry" not in action.reason


def test_progressing_rollout_waits() -> None:
    body = deployment(
        "2", previous="1", status="progressing", rollout="progressing", sidecar=True, deadline=None
    )
    action = plan.decide(body, AliasTarget("2"))
    assert action.kind is Kind.NOOP


def test_completed_rollout_is_reported_once() -> None:
    body = deployment(
        "2", previous="1", status="progressing", rollout="complete", sidecar=True, deadline=None
    )
    action = plan.decide(body, AliasTarget("2"))
    assert action.kind is Kind.SUCCEED
    assert action.tag == "succeeded"
    assert action.event is not None
    assert action.event.reason == "ModelRolloutSucceeded"
    after = patched(body, action)
    assert after["spec"] == body["spec"]  # no new rollout: metadata only
    assert after["metadata"]["annotations"]["mlkube.io/rollout-status"] == "succeeded"
    assert plan.decide(after, tagged("2", "succeeded")).kind is Kind.NOOP


def test_completed_rollout_waits_for_the_registry_to_tag() -> None:
    body = deployment(
        "2", previous="1", status="progressing", rollout="complete", sidecar=True, deadline=None
    )
    action = plan.decide(body, None, registry_ok=False)
    assert action.kind is Kind.NOTE  # only the registry condition is written
    assert "rollout-status" not in str(action.patch)


def test_model_failure_restores_the_stable_version_even_without_registry() -> None:
    body = deployment(
        "2", previous="1", status="progressing", rollout="failed", sidecar=True, deadline=None
    )
    body["metadata"]["annotations"]["mlkube.io/stable-model-version"] = "1"
    action = plan.decide(body, None, registry_ok=False, pods=new_pod_cannot_load("2"))
    assert action.kind is Kind.REVERT
    assert [e.reason for e in action.events] == ["ModelRolloutFailed", "ModelRegistryUnavailable"]
    action = plan.decide(body, None, registry_ok=True, pods=new_pod_cannot_load("2"))
    assert (action.version, action.previous, action.tag) == ("2", "1", "failed")
    assert action.cause is diagnosis.Cause.MODEL
    assert action.event is not None
    assert action.event.type == "Warning"
    assert UNPICKLING_ERROR in action.event.message
    after = patched(body, action)
    assert readers.pinned_version(after) == "1"
    assert after["spec"]["template"]["metadata"]["annotations"]["mlkube.io/model-version"] == "1"
    assert after["metadata"]["annotations"]["mlkube.io/rollout-status"] == "failed"
    assert after["metadata"]["annotations"]["mlkube.io/failed-model-version"] == "2"

    # No retry loop: while the alias still says 2, nothing is written (only the tag, once).
    assert plan.decide(after, tagged("2", "failed")).kind is Kind.NOOP
    retag = plan.decide(after, tagged("2", None))
    assert retag.kind is Kind.TAG
    assert retag.patch == []
    # The alias moves on: roll, and forget the failure.
    again = plan.decide(after, AliasTarget("3"))
    assert again.kind is Kind.ROLL
    rolled = patched(after, again)
    assert "mlkube.io/failed-model-version" not in rolled["metadata"]["annotations"]


def test_an_unexplained_failure_is_not_blamed_on_the_model() -> None:
    body = deployment("2", status="progressing", rollout="failed", sidecar=True, deadline=None)
    body["metadata"]["annotations"]["mlkube.io/stable-model-version"] = "1"
    action = plan.decide(body, AliasTarget("2"))  # pods not read: nothing says why
    assert action.kind is Kind.STALL
    assert action.tags == {}
    assert action.previous == "1"
    after = patched(body, action)
    assert readers.pinned_version(after) == "1"
    assert after["metadata"]["annotations"]["mlkube.io/rollout-status"] == "waiting"
    assert "mlkube.io/failed-model-version" not in after["metadata"]["annotations"]


def test_alias_moved_back_by_hand_drops_the_failure_marker() -> None:
    body = deployment("1", previous="2", status="failed", failed="2", sidecar=True, deadline=None)
    action = plan.decide(body, tagged("1", "succeeded"))
    assert action.kind is Kind.FORGET
    after = patched(body, action)
    assert "mlkube.io/failed-model-version" not in after["metadata"]["annotations"]
    assert after["metadata"]["annotations"]["mlkube.io/rollout-status"] == "succeeded"
    assert after["spec"] == body["spec"]


def test_alias_moving_during_a_rollout_supersedes_it() -> None:
    body = deployment(
        "2", previous="1", status="progressing", rollout="progressing", sidecar=True, deadline=None
    )
    action = plan.decide(body, AliasTarget("3"))
    assert action.kind is Kind.ROLL
    assert action.version == "3"


def test_succeeded_but_untagged_version_gets_tagged() -> None:
    action = plan.decide(
        deployment("3", status="succeeded", sidecar=True, deadline=None), tagged("3", None)
    )
    assert (action.kind, action.version, action.tag) == (Kind.TAG, "3", "succeeded")
    assert action.patch == []


# -- 1. roll back to the last known good, not to "what was pinned" ----------------------------


def test_rollback_goes_to_the_last_known_good_version_not_the_previous_pin() -> None:
    body = deployment("1")
    body = apply(body, plan.decide(body, AliasTarget("2"), now=T0))
    body = controller_progressing(body)
    # v2 never became available; the alias moves on to 3
    action = plan.decide(body, AliasTarget("3"), now=T0 + dt.timedelta(seconds=20))
    assert action.kind is Kind.ROLL
    body = apply(body, action)
    failed_at = T0 + dt.timedelta(seconds=400)
    body = controller_deadline(body, failed_at)
    action = plan.decide(body, AliasTarget("3"), now=failed_at, pods=failing_pods("3", MODEL_ERROR))
    assert action.kind is Kind.REVERT
    after = apply(body, action)
    assert readers.pinned_version(after) == "1"  # the last version pods served, not v2
    assert record(after)["stable-model-version"] == "1"
    assert record(after)["failed-model-version"] == "3"


# -- 2. a failed first pin never falls back to following the alias ----------------------------


def test_failed_first_pin_does_not_unpin() -> None:
    body = deployment(None, status=None)
    body = apply(body, plan.decide(body, AliasTarget("1"), now=T0))
    failed_at = T0 + dt.timedelta(seconds=400)
    body = controller_deadline(body, failed_at)
    detail = {"status": "loading", "last_error": MODEL_ERROR}
    pods = [diagnosis.PodView(name="serving-new", version="1", ready=False, ready_detail=detail)]
    action = plan.decide(body, AliasTarget("1"), now=failed_at, pods=pods)
    after = apply(body, action)
    # Unpinned pods would load models:/name@production = the failing version 1 again.
    assert readers.pinned_version(after) is not None
    assert record(after)["rollout-status"] == "failed"
    assert action.event is not None
    assert action.event.type == "Warning"
    assert "no version known to serve" in action.event.message


def test_failed_first_pin_goes_back_to_what_the_old_pods_serve() -> None:
    body = deployment(None, status=None)
    body = apply(body, plan.decide(body, AliasTarget("2"), now=T0))
    failed_at = T0 + dt.timedelta(seconds=400)
    body = controller_deadline(body, failed_at)
    action = plan.decide(body, AliasTarget("2"), now=failed_at, pods=failing_pods("2", MODEL_ERROR))
    after = apply(body, action)
    assert readers.pinned_version(after) == "1"  # what the ready old pods report


# -- 3. bookkeeping in metadata: a revert brings back the old ReplicaSet ----------------------


def test_revert_restores_the_stable_pod_template_byte_for_byte() -> None:
    original = deployment("1")
    body = apply(original, plan.decide(original, AliasTarget("2"), now=T0))
    assert "mlkube.io/previous-model-version" not in body["spec"]["template"]["metadata"][
        "annotations"]  # fmt: skip
    failed_at = T0 + dt.timedelta(seconds=400)
    body = controller_deadline(body, failed_at)
    action = plan.decide(body, AliasTarget("2"), now=failed_at, pods=failing_pods("2", MODEL_ERROR))
    after = apply(body, action)
    # Same template as the v1 ReplicaSet: same pod-template-hash, the old pods are reused.
    assert after["spec"]["template"] == original["spec"]["template"]


# -- 4. paused Deployments and zero replicas -----------------------------------------------


def test_paused_deployment_times_out_on_the_operators_own_deadline() -> None:
    body = deployment("1")
    body["spec"]["paused"] = True
    body = apply(body, plan.decide(body, AliasTarget("2"), now=T0))
    body["status"]["observedGeneration"] = body["metadata"]["generation"]  # nothing progresses
    note = plan.decide(body, AliasTarget("2"), now=T0 + dt.timedelta(seconds=60))
    assert (note.kind, note.event) == (Kind.NOTE, None)  # the record says why, once
    body = apply(body, note)
    assert "paused" in record(body)["rollout-reason"]
    assert plan.decide(body, AliasTarget("2"), now=T0 + dt.timedelta(seconds=90)).patch == []
    late = T0 + dt.timedelta(seconds=301)
    action = plan.decide(body, AliasTarget("2"), now=late)
    assert action.kind is Kind.STALL
    assert action.tags.get(KEY_TAG) != "failed"  # not the model's fault
    assert action.event is not None
    assert action.event.type == "Warning"
    assert "paused" in action.event.message
    after = apply(body, action)
    assert record(after)["rollout-status"] == "waiting"
    assert "paused" in record(after)["rollout-reason"]


def test_zero_replicas_is_not_a_success() -> None:
    body = deployment("1", replicas=0)
    body = apply(body, plan.decide(body, AliasTarget("2"), now=T0))
    body = controller_complete(body)  # the controller calls 0/0 complete at once
    action = plan.decide(body, AliasTarget("2"), now=T0 + dt.timedelta(seconds=5))
    assert action.kind is not Kind.SUCCEED
    assert KEY_TAG not in action.tags
    after = apply(body, action)
    assert record(after).get("stable-model-version") != "2"
    assert "no pod" in record(after)["rollout-reason"]


# -- 6. stale conditions -------------------------------------------------------------------


def test_a_deadline_condition_older_than_the_patch_is_ignored() -> None:
    body = deployment("1")
    stale = controller_deadline(body, T0 - dt.timedelta(hours=1))["status"]["conditions"]
    body = apply(body, plan.decide(body, AliasTarget("2"), now=T0))
    body = controller_progressing(body)
    body["status"]["conditions"] = stale  # left over from an earlier ReplicaSet
    action = plan.decide(body, AliasTarget("2"), now=T0 + dt.timedelta(seconds=10))
    assert action.kind is Kind.NOOP
    assert readers.rollout_phase(body, since=T0) is readers.Phase.PROGRESSING
    assert readers.rollout_phase(body) is readers.Phase.FAILED


# -- 8. verdicts keyed by Deployment --------------------------------------------------------


def test_verdict_tags_are_keyed_by_namespace_and_name() -> None:
    body = apply(deployment("1"), plan.decide(deployment("1"), AliasTarget("2"), now=T0))
    action = plan.decide(controller_complete(body), AliasTarget("2"), now=T0)
    assert action.kind is Kind.SUCCEED
    assert action.tags[KEY_TAG] == "succeeded"
    assert "mlkube.rollout" not in action.tags
    # Another Deployment's verdict on the same version does not count as ours.
    settled_body = apply(controller_complete(body), action)
    theirs = AliasTarget("2", tags={"mlkube.rollout/staging/serving": "failed"})
    assert plan.decide(settled_body, theirs, now=T0).kind is Kind.TAG


# -- 11. a hold ----------------------------------------------------------------------------


def test_a_held_deployment_is_left_alone() -> None:
    body = deployment("1")
    body["metadata"]["annotations"]["mlkube.io/rollout-hold"] = "incident 42: pinned by hand"
    action = plan.decide(body, AliasTarget("2"), now=T0)
    assert (action.kind, action.patch, action.event) == (Kind.NOOP, [], None)
    assert "incident 42" in action.reason


# -- the record ---------------------------------------------------------------------------


def test_the_rollout_record_is_in_deployment_metadata() -> None:
    body = apply(deployment("1"), plan.decide(deployment("1"), AliasTarget("2"), now=T0))
    assert record(body) == {
        "rollout-status": "progressing",
        "rollout-target": "2",
        "stable-model-version": "1",
        "rollout-started": "2026-03-01T12:00:00Z",
        "rollout-reason": "alias production -> 2",
        "rollout-template": patches.template_hash(body),
    }
    assert RolloutRecord.of(body).phase == "progressing"


# -- 5. the cause, from the new pods: what the operator does about it -----------------------------


def test_not_the_models_fault_goes_back_to_stable_and_retries_with_backoff() -> None:
    original = deployment("1")
    body = apply(original, plan.decide(original, AliasTarget("2"), now=T0))
    unschedulable = [diagnosis.PodView("serving-new", "2", unschedulable="Insufficient cpu")]
    failed_at = T0 + dt.timedelta(seconds=300)
    body = controller_deadline(body, failed_at)
    action = plan.decide(body, AliasTarget("2"), now=failed_at, pods=unschedulable)
    assert (action.kind, action.cause, dict(action.tags)) == (
        Kind.STALL,
        diagnosis.Cause.CAPACITY,
        {},
    )
    assert action.event is not None
    assert action.event.type == "Warning"
    assert "Insufficient cpu" in action.event.message
    body = apply(body, action)
    assert body["spec"]["template"] == original["spec"]["template"]  # the v1 ReplicaSet again
    assert record(body)["rollout-status"] == "waiting"
    assert record(body)["rollout-attempt"] == "1"
    assert record(body)["rollout-retry-at"] == stamp(failed_at + dt.timedelta(seconds=60))
    assert "failed-model-version" not in record(body)
    body = controller_complete(body)

    # Before the retry time: nothing; after it: the same version again, a longer deadline.
    assert plan.decide(body, AliasTarget("2"), now=failed_at + dt.timedelta(seconds=30)).patch == []
    retry_at = failed_at + dt.timedelta(seconds=61)
    action = plan.decide(body, AliasTarget("2"), now=retry_at)
    assert (action.kind, action.version) == (Kind.ROLL, "2")
    body = controller_progressing(apply(body, action))
    assert record(body)["rollout-attempt"] == "1"
    assert diagnosis.deadline_seconds(body, 1) == 600
    # 400 s in: within the doubled deadline, the stale-free status says still progressing.
    assert plan.decide(body, AliasTarget("2"), now=retry_at + dt.timedelta(seconds=400),
                       pods=unschedulable).kind is Kind.NOOP  # fmt: skip

    # Still unschedulable at the end of the last try: give up, not blaming the model.
    at = retry_at + dt.timedelta(seconds=601)
    action = plan.decide(body, AliasTarget("2"), now=at, pods=unschedulable)
    assert action.kind is Kind.STALL  # attempt 2 of 3
    body = apply(body, action)
    at += dt.timedelta(seconds=200)
    body = controller_progressing(apply(body, plan.decide(body, AliasTarget("2"), now=at)))
    at += dt.timedelta(seconds=1201)
    action = plan.decide(body, AliasTarget("2"), now=at, pods=unschedulable)
    assert action.kind is Kind.REVERT
    assert action.tags[KEY_TAG] == "aborted"
    assert action.event is not None
    assert action.event.reason == "ModelRolloutAborted"
    body = apply(body, action)
    assert readers.pinned_version(body) == "1"
    assert record(body)["failed-model-version"] == "2"


def test_someone_elses_template_change_restarts_the_deadline() -> None:
    body = apply(deployment("1"), plan.decide(deployment("1"), AliasTarget("2"), now=T0))
    upgraded = copy.deepcopy(body)  # a helm upgrade during the rollout: a new image
    upgraded["spec"]["template"]["spec"]["containers"][0]["image"] = "serve:2"
    body = controller_progressing(bump(body, upgraded))
    at = T0 + dt.timedelta(seconds=290)
    action = plan.decide(body, AliasTarget("2"), now=at)
    assert action.kind is Kind.NOTE
    body = apply(body, action)
    assert record(body)["rollout-started"] == stamp(at)
    assert record(body)["rollout-template"] == patches.template_hash(body)
    # The old deadline (T0 + 300 s) no longer applies.
    later = T0 + dt.timedelta(seconds=400)
    assert plan.decide(body, AliasTarget("2"), now=later, pods=[]).kind is Kind.NOOP


def test_success_needs_a_pod_serving_the_version() -> None:
    body = apply(deployment("1"), plan.decide(deployment("1"), AliasTarget("2"), now=T0))
    body = controller_complete(body)
    still_old = [diagnosis.PodView("serving-a", "1", ready=True)]
    assert plan.decide(body, AliasTarget("2"), now=T0, pods=still_old).kind is Kind.NOOP
    serving = [diagnosis.PodView("serving-b", "2", ready=True)]
    action = plan.decide(body, AliasTarget("2"), now=T0, pods=serving)
    assert action.kind is Kind.SUCCEED
    after = apply(body, action)
    assert record(after)["stable-model-version"] == "2"
    assert record(after)["rollout-status"] == "succeeded"


# -- issue #20: records and tags that tell the truth ---------------------------------------------


def test_a_version_superseded_before_it_served_is_tagged_and_told() -> None:
    body = apply(deployment("1"), plan.decide(deployment("1"), AliasTarget("2"), now=T0))
    body = controller_progressing(body)
    action = plan.decide(body, AliasTarget("3"), now=T0 + dt.timedelta(seconds=10), pods=[])
    assert action.kind is Kind.ROLL
    assert action.version == "3"
    # The pods served version 1, never 2: the Events name version 1.
    started = [e for e in action.events if e.reason == "ModelRolloutStarted"]
    assert "from version 1 to 3" in started[0].message
    superseded = [e for e in action.events if e.reason == "ModelRolloutSuperseded"]
    assert "version 2 was superseded by version 3 before it served" in superseded[0].message
    assert "the pods serve version 1" in superseded[0].message
    assert action.other_tags["2"][KEY_TAG] == "superseded"
    assert record(apply(body, action))["stable-model-version"] == "1"


def test_after_the_alias_moves_back_the_record_names_what_the_pods_serve() -> None:
    body = apply(deployment("5"), plan.decide(deployment("5"), AliasTarget("6"), now=T0))
    at = T0 + dt.timedelta(seconds=400)
    body = apply(body, plan.decide(body, AliasTarget("6"), now=at,
                                   pods=failing_pods("6", MODEL_ERROR)))  # fmt: skip
    assert record(body)["rollout-status"] == "failed"
    action = plan.decide(body, AliasTarget("5"), now=at)  # someone moves the alias back
    assert action.kind is Kind.FORGET
    body = apply(body, action)
    rec = record(body)
    assert (rec["rollout-status"], rec["rollout-target"], rec["stable-model-version"]) == (
        "succeeded",
        "5",
        "5",
    )
    assert "failed-model-version" not in rec  # alias 6 again would be tried again
    assert rec["last-failed-model-version"] == "6"  # but people still see it failed
    assert (
        RolloutRecord.of(body).describe().startswith("succeeded: target 5, stable 5, last failed 6")
    )
    # Until a newer version succeeds.
    body = apply(body, plan.decide(body, AliasTarget("7"), now=at))
    body = controller_complete(body)
    done = plan.decide(
        body, AliasTarget("7"), now=at, pods=[diagnosis.PodView("p", "7", ready=True)]
    )
    assert "last-failed-model-version" not in record(apply(body, done))


# -- issue #20: a model that cannot load is judged in seconds ------------------------------------


def test_a_load_error_on_every_new_pod_fails_the_version_after_the_confirmation() -> None:
    body = rolling()
    pods = failing_pods("2", MODEL_ERROR)
    first = plan.decide(body, AliasTarget("2"), now=T0 + dt.timedelta(seconds=8), pods=pods)
    assert first.kind is Kind.NOTE
    assert first.recheck_after == 30
    body = apply(body, first)
    assert record(body)["rollout-load-error-since"] == "2026-03-01T12:00:08Z"
    early = plan.decide(body, AliasTarget("2"), now=T0 + dt.timedelta(seconds=20), pods=pods)
    assert (early.kind, early.patch, early.recheck_after) == (Kind.NOOP, [], 18)
    action = plan.decide(body, AliasTarget("2"), now=T0 + dt.timedelta(seconds=38), pods=pods)
    assert action.kind is Kind.REVERT  # 38 s after the roll, not 300 s
    assert action.tag == "failed"
    assert MODEL_ERROR in action.reason
    after = apply(body, action)
    assert readers.pinned_version(after) == "1"
    assert "rollout-load-error-since" not in record(after)


def test_the_confirmation_is_configurable_and_can_be_turned_off() -> None:
    body = rolling()
    body["metadata"]["annotations"]["mlkube.io/load-error-confirm-seconds"] = "0"
    pods = failing_pods("2", MODEL_ERROR)
    action = plan.decide(body, AliasTarget("2"), now=T0 + dt.timedelta(seconds=60), pods=pods)
    assert action.kind is Kind.NOOP
    assert action.recheck_after == 240  # the deadline decides
    body["metadata"]["annotations"]["mlkube.io/load-error-confirm-seconds"] = "5"
    assert plan.decide(body, AliasTarget("2"), now=T0, pods=pods).recheck_after == 5


@pytest.mark.parametrize(
    "pods",
    [
        pytest.param(failing_pods("2", "ConnectionError: Max retries exceeded"), id="registry"),
        pytest.param(
            [*failing_pods("2", MODEL_ERROR), diagnosis.PodView("serving-new-2", "2", ready=True)],
            id="one-new-pod-loads",
        ),
        pytest.param(
            [
                *failing_pods("2", MODEL_ERROR),
                diagnosis.PodView("serving-new-2", "2", ready_detail={"last_error": "MemoryError"}),
            ],
            id="different-errors",
        ),  # fmt: skip
        pytest.param(
            [diagnosis.PodView("serving-new", "2", waiting="ImagePullBackOff")], id="image"
        ),
    ],
)
def test_only_the_same_model_error_on_every_new_pod_is_confirmed(
    pods: list[diagnosis.PodView],
) -> None:
    action = plan.decide(rolling(), AliasTarget("2"), now=T0 + dt.timedelta(seconds=8), pods=pods)
    assert action.kind is Kind.NOOP


def test_a_load_error_that_clears_is_forgotten() -> None:
    body = rolling()
    now = T0 + dt.timedelta(seconds=8)
    body = apply(body, plan.decide(body, AliasTarget("2"), now=now,
                                   pods=failing_pods("2", MODEL_ERROR)))  # fmt: skip
    loading = [diagnosis.PodView("serving-new", "2", ready_detail={"status": "loading"})]
    action = plan.decide(body, AliasTarget("2"), now=now, pods=loading)
    assert action.kind is Kind.NOTE
    assert "rollout-load-error-since" not in record(apply(body, action))
