"""The operator's writes as JSON patches (rollout.patches): the pin in the pod template
(``template_patch``, ``pinned_template``), the record in the metadata (``state_patch``,
``record_patch``), the resourceVersion precondition and the template hash."""

from __future__ import annotations

import copy

import jsonpatch
import pytest

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
