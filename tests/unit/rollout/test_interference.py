"""Whatever another party changes on a Deployment during a rollout, the operator writes a
bounded number of times and the rollout ends (issue #20).

The API server here follows Kubernetes' rule for Deployments: a change of the spec *or of the
annotations* bumps ``metadata.generation``, so the operator's own record writes bump it too.
Each scenario plays a rollout second by second: another party changes the Deployment at given
times, the Deployment controller reacts, the operator decides (with the pods, as the reconciler
reads them) and its patches are applied and counted."""

from __future__ import annotations

import copy
import datetime as dt
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from mlkube.core import deployment as readers
from rollout import diagnosis, plan
from rollout.plan import AliasTarget
from tests.unit.rollout.builders import (
    MODEL_ERROR,
    T0,
    Body,
    annotate,
    apply,
    bump,
    deployment,
    label,
    record,
    restart,
    scale,
    upgrade,
)

DEADLINE = 300  # deployment()'s progressDeadlineSeconds
RESYNC = 15  # the chart's rollout.pollSeconds
STEP = 5  # seconds between two looks of the operator (events, rechecks and polls together)
START_SECONDS = 20  # how long a good version's new pods take to become available


CHANGES: dict[str, Callable[[Body, int], None]] = {
    "annotate": annotate,
    "label": label,
    "scale": scale,
    "upgrade": upgrade,
    "restart": restart,
}
TEMPLATE_CHANGES = {"upgrade", "restart"}


@dataclass
class World:
    """The API server, the Deployment controller and the pods, for one serving Deployment."""

    good: bool  # does version 2 load?
    body: Body = field(default_factory=lambda: deployment("1"))
    template_changed: int = 0  # when the pod template last changed (seconds after T0)
    writes: int = 0

    def someone_else(self, change: str, n: int, at: int) -> None:
        new = copy.deepcopy(self.body)
        CHANGES[change](new, n)
        if new["spec"]["template"] != self.body["spec"]["template"]:
            self.template_changed = at
        self.body = bump(self.body, new)

    def operator(self, action: plan.Action, at: int) -> None:
        if action.patch:
            self.writes += 1
            before = self.body["spec"]["template"]
            self.body = apply(self.body, action)
            if self.body["spec"]["template"] != before:
                self.template_changed = at

    def controller(self, at: int) -> None:
        """The Deployment controller: pods of a version that loads are available
        START_SECONDS after the template last changed; a version that does not load never."""
        body = self.body
        replicas = body["spec"]["replicas"]
        pinned = readers.pinned_version(body)
        up = pinned == "1" or (self.good and at - self.template_changed >= START_SECONDS)
        body["status"] = {
            "observedGeneration": body["metadata"]["generation"],
            "replicas": replicas if up else replicas + 1,
            "updatedReplicas": replicas if up else 1,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
        }

    def pods(self) -> list[diagnosis.PodView]:
        pinned = readers.pinned_version(self.body)
        stable = diagnosis.PodView("serving-old", "1", ready=True,
                              ready_detail={"status": "ready", "model_version": "1"})  # fmt: skip
        if pinned == "1":
            return [stable]
        if self.body["status"]["updatedReplicas"] == self.body["spec"]["replicas"]:
            return [diagnosis.PodView("serving-new", pinned, ready=True)]
        detail = {"status": "loading"} | ({} if self.good else {"last_error": MODEL_ERROR})
        return [stable, diagnosis.PodView("serving-new", pinned, ready=False, ready_detail=detail)]


def play(good: bool, changes: dict[int, list[str]], until: int = 2 * DEADLINE) -> World:
    """A rollout of version 2 from version 1, with ``changes`` (seconds after T0 -> what
    another party changes then); the operator looks every STEP seconds."""
    world = World(good)
    world.operator(plan.decide(world.body, AliasTarget("2"), now=T0), 0)
    counter = itertools.count()
    for at in range(STEP, until, STEP):
        for change in changes.get(at, []):
            world.someone_else(change, next(counter), at)
        world.controller(at)
        now = T0 + dt.timedelta(seconds=at)
        action = plan.decide(world.body, AliasTarget("2"), now=now, pods=world.pods())
        world.operator(action, at)
        if record(world.body)["rollout-status"] in ("succeeded", "failed"):
            world.ended = at  # type: ignore[attr-defined]
            return world
    raise AssertionError(f"the rollout did not end in {until}s: {record(world.body)}")


def bound(changes: dict[int, list[str]]) -> int:
    """The operator's writes: the roll, one note when a load error is first seen, the verdict,
    and for each change of the pod template by someone else (a new ReplicaSet) one note and
    one more first sighting of the load error. Nothing for annotations, labels or replicas."""
    return 3 + 2 * sum(c in TEMPLATE_CHANGES for at in changes.values() for c in at)


SCENARIOS = [
    pytest.param({at: [change]}, id=f"{change}-at-{at}s")
    for change in CHANGES
    for at in (5, 15, 25)
] + [
    pytest.param({at: ["annotate"] for at in range(5, 200, 5)}, id="annotation-storm"),
    pytest.param({at: list(CHANGES) for at in (5, 10)}, id="everything-twice"),
]


@pytest.mark.parametrize("good", [True, False], ids=["loads", "cannot-load"])
@pytest.mark.parametrize("changes", SCENARIOS)
def test_another_partys_changes_leave_the_rollout_bounded(
    good: bool, changes: dict[int, list[str]]
) -> None:
    world = play(good, changes)
    final = record(world.body)
    assert world.writes <= bound(changes), (world.writes, final)
    last_template_change = max(
        [at for at, done in changes.items() if TEMPLATE_CHANGES & set(done)], default=0
    )
    if good:
        assert final["rollout-status"] == "succeeded"
        assert final["stable-model-version"] == "2"
        assert world.ended <= last_template_change + START_SECONDS + RESYNC  # type: ignore[attr-defined]
    else:
        assert final["rollout-status"] == "failed"
        assert final["failed-model-version"] == "2"
        assert readers.pinned_version(world.body) == "1"
        # Judged by the load error, long before the deadline.
        confirm = diagnosis.DEFAULT_LOAD_ERROR_CONFIRM_SECONDS
        assert world.ended <= last_template_change + confirm + RESYNC  # type: ignore[attr-defined]


def test_an_annotation_during_a_rollout_is_not_a_spec_change() -> None:
    """The severe case of #20: one `kubectl annotate` made the operator note "someone else
    changed the spec" on every event, its note bumping the generation again."""
    body = apply(deployment("1"), plan.decide(deployment("1"), AliasTarget("2"), now=T0))
    annotated = copy.deepcopy(body)
    annotate(annotated, 42)
    body = bump(body, annotated)
    assert body["metadata"]["generation"] > 5  # the API server bumped it
    action = plan.decide(body, AliasTarget("2"), now=T0 + dt.timedelta(seconds=10), pods=[])
    assert action.kind is plan.Kind.NOOP
    assert action.patch == []
