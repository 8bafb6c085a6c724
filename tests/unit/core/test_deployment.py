"""The shared Deployment readers, on the bodies `kubectl get -o json` gives the deploy driver:
the rule the operator enforces is the rule `make status` and the e2e test read."""

from __future__ import annotations

from mlkube.core.deployment import Phase, pinned_version, rollout_phase
from tests.unit.deploy.fakes import deployment


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
