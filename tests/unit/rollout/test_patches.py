"""The operator's writes as JSON patches (rollout.patches): the pin in the pod template
(``template_patch``, ``pinned_template``), the record in the metadata (``state_patch``,
``record_patch``), the resourceVersion precondition and the template hash."""

from __future__ import annotations

import copy

import jsonpatch
import pytest

from mlkube.core import deployment as readers
from mlkube.core.record import RolloutRecord
from rollout import patches, plan
from rollout.plan import AliasTarget
from tests.unit.rollout.builders import deployment, restart

# -- template_patch ------------------------------------------------------------------------------


def test_patch_guards_positions_so_a_concurrent_edit_fails_it() -> None:
    body = deployment("1", status=None, sidecar=True, deadline=None)
    action = plan.decide(body, AliasTarget("2"))
    moved = copy.deepcopy(body)
    env = moved["spec"]["template"]["spec"]["containers"][0]["env"]
    env.insert(0, {"name": "NEW", "value": "x"})  # someone edited the env meanwhile
    with pytest.raises(jsonpatch.JsonPatchTestFailed):
        jsonpatch.apply_patch(moved, action.patch)


def test_template_patch_changes_only_the_pin_of_every_serving_container() -> None:
    body = deployment("1", previous="0", sidecar=True)
    after = jsonpatch.apply_patch(body, patches.template_patch(body, "2"))
    assert readers.pinned_version(after) == "2"
    assert after["spec"]["template"]["spec"]["containers"][1] == body["spec"]["template"]["spec"][
        "containers"][1]  # fmt: skip
    assert after["spec"]["template"]["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        "mlkube.io/model-version": "2",  # v1's previous-model-version is gone
    }
    assert patches.template_patch(deployment("2"), "2") == []  # pinned already: nothing


def test_pinned_template_is_the_template_the_patch_makes() -> None:
    body = deployment("1", previous="0", sidecar=True)
    after = jsonpatch.apply_patch(body, patches.template_patch(body, "2"))
    assert patches.pinned_template(body, "2") == after["spec"]["template"]
    assert body["spec"]["template"]["metadata"]["annotations"]["mlkube.io/model-version"] == "1"


# -- with_precondition, state_patch ---------------------------------------------------------------


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


# -- template_hash -------------------------------------------------------------------------------


def test_the_template_hash_ignores_the_pin_only() -> None:
    one, two = deployment("1"), deployment("2")
    assert patches.template_hash(one) == patches.template_hash(two)
    assert patches.template_hash(deployment(None, status=None)) == patches.template_hash(one)
    restarted = copy.deepcopy(one)
    restart(restarted, 1)
    assert patches.template_hash(restarted) != patches.template_hash(one)


def test_state_patch_removes_keys_and_creates_the_annotations() -> None:
    body = deployment("1", failed="2")
    assert patches.state_patch(body, {"mlkube.io/failed-model-version": None}) == [
        {"op": "remove", "path": "/metadata/annotations/mlkube.io~1failed-model-version"}
    ]
    assert patches.state_patch(body, {"mlkube.io/rollout-target": None}) == []  # absent already
    assert patches.state_patch(body, {"mlkube.io/rollout-status": "succeeded"}) == []  # the same
    del body["metadata"]["annotations"]
    assert patches.state_patch(body, {"a": "1", "b": None}) == [
        {"op": "add", "path": "/metadata/annotations", "value": {"a": "1"}}
    ]


def test_record_patch_writes_the_record_and_drops_the_old_generation() -> None:
    old = {"mlkube.io/stable-model-version": "1", "mlkube.io/rollout-generation": "4"}
    body = deployment("1", annotations=old)
    record = RolloutRecord.of(body)
    assert patches.record_patch(body, record) == []  # nothing to write: the generation stays
    ops = patches.record_patch(body, record.noted("a note"))
    after = jsonpatch.apply_patch(body, ops)
    assert after["metadata"]["annotations"]["mlkube.io/rollout-reason"] == "a note"
    assert "mlkube.io/rollout-generation" not in after["metadata"]["annotations"]
    assert RolloutRecord.of(after) == record.noted("a note")
