"""The shared Deployment readers (mlkube.core.deployment: ``pinned_version``,
``serving_containers``, ``rollout_phase``), on the bodies `kubectl get -o json` gives the deploy
driver (tests.unit.deploy.fakes) and on the operator's serving Deployment
(tests.unit.rollout.builders): the rule the operator enforces is the rule `make status` and the
e2e test read."""

from __future__ import annotations

import pytest

from mlkube.core import deployment as readers
from mlkube.core.deployment import Phase, pinned_version, rollout_phase
from tests.unit.deploy.fakes import deployment
from tests.unit.rollout import builders


def test_complete_needs_every_replica_updated_and_available_and_no_old_pods() -> None:
    assert rollout_phase(deployment("d", replicas=2)) is Phase.COMPLETE
    assert rollout_phase(deployment("d", replicas=2, updated=1)) is Phase.PROGRESSING
    assert rollout_phase(deployment("d", replicas=2, available=1)) is Phase.PROGRESSING
    old_pod_left = deployment("d", replicas=2, current=3)
    assert rollout_phase(old_pod_left) is Phase.PROGRESSING
    stale = deployment("d", generation=2)
    stale["status"]["observedGeneration"] = 1
    assert rollout_phase(stale) is Phase.PROGRESSING


def test_the_pinned_env_var_wins_over_the_annotation() -> None:
    body = deployment("d")
    body["spec"]["template"] = {
        "metadata": {"annotations": {"mlkube.io/model-version": "3"}},
        "spec": {
            "containers": [{"name": "serve", "env": [{"name": "MODEL_VERSION", "value": "4"}]}]
        },
    }
    assert pinned_version(body) == "4"
    body["spec"]["template"]["spec"]["containers"][0]["env"] = []
    assert pinned_version(body) == "3"


# -- on the operator's serving Deployment ---------------------------------------------------------


def test_serving_container_is_the_one_with_the_model_env() -> None:
    body = builders.deployment(status=None, sidecar=True, deadline=None)
    containers = body["spec"]["template"]["spec"]["containers"]
    containers.reverse()  # the sidecar first
    assert readers.serving_containers(body) == [1]
    containers[1]["env"] = []  # no MODEL_* env anywhere: the first container
    assert readers.serving_containers(body) == [0]


def test_pinned_version_prefers_env_then_annotation() -> None:
    assert (
        readers.pinned_version(builders.deployment("5", status=None, sidecar=True, deadline=None))
        == "5"
    )
    body = builders.deployment(None, status=None, sidecar=True, deadline=None)
    assert readers.pinned_version(body) is None
    body["spec"]["template"]["metadata"]["annotations"]["mlkube.io/model-version"] = "4"
    assert readers.pinned_version(body) == "4"


@pytest.mark.parametrize(
    ("rollout", "phase"),
    [("complete", Phase.COMPLETE), ("progressing", Phase.PROGRESSING), ("failed", Phase.FAILED)],
)
def test_rollout_phase_reads_status_like_kubectl(rollout: str, phase: Phase) -> None:
    assert (
        readers.rollout_phase(
            builders.deployment(rollout=rollout, status=None, sidecar=True, deadline=None)
        )
        is phase
    )


def test_rollout_phase_waits_for_the_controller_to_observe_the_change() -> None:
    body = builders.deployment(rollout="failed", status=None, sidecar=True, deadline=None)
    body["metadata"]["generation"] = 5  # our patch; the old status is about generation 4
    assert readers.rollout_phase(body) is Phase.PROGRESSING
