"""The operator's decisions and patches, as pure functions (no API server, no MLflow)."""

from __future__ import annotations

import copy

import jsonpatch
import pytest

from mlkube.core import deployment as readers
from mlkube.core.deployment import Phase
from mlkube.core.record import RolloutPhase, RolloutRecord
from rollout import diagnosis, patches, plan
from rollout.plan import AliasTarget, Kind
from tests.unit.rollout.builders import (
    MODEL,
    UNPICKLING_ERROR,
    deployment,
    new_pod_cannot_load,
    patched,
    tagged,
)

# -- reading a Deployment ----------------------------------------------------------------------


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


def test_serving_container_is_the_one_with_the_model_env() -> None:
    body = deployment(status=None, sidecar=True, deadline=None)
    containers = body["spec"]["template"]["spec"]["containers"]
    containers.reverse()  # the sidecar first
    assert readers.serving_containers(body) == [1]
    containers[1]["env"] = []  # no MODEL_* env anywhere: the first container
    assert readers.serving_containers(body) == [0]


def test_pinned_version_prefers_env_then_annotation() -> None:
    assert readers.pinned_version(deployment("5", status=None, sidecar=True, deadline=None)) == "5"
    body = deployment(None, status=None, sidecar=True, deadline=None)
    assert readers.pinned_version(body) is None
    body["spec"]["template"]["metadata"]["annotations"]["mlkube.io/model-version"] = "4"
    assert readers.pinned_version(body) == "4"


@pytest.mark.parametrize(
    ("rollout", "phase"),
    [("complete", Phase.COMPLETE), ("progressing", Phase.PROGRESSING), ("failed", Phase.FAILED)],
)
def test_rollout_phase_reads_status_like_kubectl(rollout: str, phase: Phase) -> None:
    assert (
        readers.rollout_phase(deployment(rollout=rollout, status=None, sidecar=True, deadline=None))
        is phase
    )


def test_rollout_phase_waits_for_the_controller_to_observe_the_change() -> None:
    body = deployment(rollout="failed", status=None, sidecar=True, deadline=None)
    body["metadata"]["generation"] = 5  # our patch; the old status is about generation 4
    assert readers.rollout_phase(body) is Phase.PROGRESSING


# -- deciding ---------------------------------------------------------------------------------


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


# -- patch mechanics ----------------------------------------------------------------------------


def test_patch_guards_positions_so_a_concurrent_edit_fails_it() -> None:
    body = deployment("1", status=None, sidecar=True, deadline=None)
    action = plan.decide(body, AliasTarget("2"))
    moved = copy.deepcopy(body)
    env = moved["spec"]["template"]["spec"]["containers"][0]["env"]
    env.insert(0, {"name": "NEW", "value": "x"})  # someone edited the env meanwhile
    with pytest.raises(jsonpatch.JsonPatchTestFailed):
        jsonpatch.apply_patch(moved, action.patch)


def test_precondition_pins_the_resource_version() -> None:
    body = deployment("1", status=None, sidecar=True, deadline=None)
    ops = patches.with_precondition(body, [{"op": "add", "path": "/x", "value": 1}])
    assert ops[0] == {"op": "replace", "path": "/metadata/resourceVersion", "value": "41"}
    assert patches.with_precondition(body, []) == []


def test_annotation_keys_are_escaped_as_json_pointers() -> None:
    ops = patches.state_patch(
        deployment("1", status=None, sidecar=True, deadline=None),
        {"mlkube.io/rollout-status": "succeeded"},
    )
    assert ops == [
        {
            "op": "add",
            "path": "/metadata/annotations/mlkube.io~1rollout-status",
            "value": "succeeded",
        }
    ]
