"""Canary rollouts (issue #13): the canary Deployment, the serving pods' /metrics, the verdict."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from rollout import canary, diagnosis, plan
from rollout.canary import CanaryPolicy, Sample
from rollout.plan import AliasTarget, Kind
from tests.unit.rollout.builders import KEY_TAG, T0, apply, deployment, record


def served(ok: int, errors: int, seconds: float, classes: dict[str, int]) -> str:
    """What a real model server exports after answering these requests (service.metrics)."""
    from service.metrics import Metrics

    metrics = Metrics()
    for _ in range(ok):
        metrics.observe_request("/invocations", "POST", 200, seconds)
    for _ in range(errors):
        metrics.observe_request("/invocations", "POST", 500, seconds)
    for _ in range(30):
        metrics.observe_request("/healthz/ready", "GET", 200, 0.001, probe=True)  # not counted
    for label, count in classes.items():
        metrics.count_predictions("2", np.array([label] * count))
    from prometheus_client import generate_latest

    return generate_latest(metrics.registry).decode()


def test_the_operator_reads_what_the_model_server_exports() -> None:
    sample = canary.parse_metrics(served(95, 5, 0.02, {"setosa": 60, "virginica": 40}))
    assert (sample.requests, sample.errors) == (100, 5)
    assert sample.classes == {"setosa": 60, "virginica": 40}
    p99 = canary.quantile(sample.buckets, 0.99)
    assert p99 is not None
    assert 0.01 < p99 <= 0.025


STABLE = canary.parse_metrics(served(990, 10, 0.004, {"setosa": 500, "versicolor": 500}))


@pytest.mark.parametrize(
    ("text", "passed", "words"),
    [
        (served(200, 2, 0.004, {"setosa": 98, "versicolor": 102}), True, "as good as stable"),
        (served(180, 20, 0.004, {"setosa": 98, "versicolor": 102}), False, "error rate 10.00%"),
        (served(200, 0, 0.2, {"setosa": 98, "versicolor": 102}), False, "p99 latency"),
        (served(200, 0, 0.004, {"setosa": 190, "versicolor": 10}), False, "classes shifted"),
    ],
)
def test_the_canary_is_judged_against_stable(text: str, passed: bool, words: str) -> None:
    verdict = canary.judge(canary.parse_metrics(text), STABLE, CanaryPolicy())
    assert verdict.passed is passed
    assert words in verdict.reason


def test_too_little_traffic_is_inconclusive() -> None:
    few = canary.parse_metrics(served(5, 0, 0.004, {"setosa": 5}))
    verdict = canary.judge(few, STABLE, CanaryPolicy())
    assert verdict.inconclusive
    assert verdict.passed  # promoted by default: the rollout's own deadline still guards
    assert not canary.judge(few, STABLE, CanaryPolicy(promote_inconclusive=False)).passed


def test_stable_counts_since_the_canary_started() -> None:
    before = Sample(1000, 0, {0.005: 1000, float("inf"): 1000}, {"a": 1000})
    after = Sample(1100, 50, {0.005: 1100, float("inf"): 1100}, {"a": 1100})
    assert (after - before).requests == 100
    assert (after - before).errors == 50


CANARY = {"mlkube.io/rollout-strategy": "canary", "mlkube.io/canary-seconds": "120"}
MOVE_BACK = {**CANARY, "mlkube.io/canary-move-alias-back": "true"}


def observation(text: str, ready: bool = True) -> plan.CanaryObservation:
    pod = diagnosis.PodView("serving-canary-x", "2", ready=ready, canary=True)
    return plan.CanaryObservation(pods=[pod], canary=canary.parse_metrics(text), stable=STABLE)


def test_alias_move_starts_a_canary_beside_the_stable_pods() -> None:
    body = deployment("1", annotations=CANARY, uid="uid-serving")
    action = plan.decide(body, AliasTarget("2"), now=T0)
    assert action.kind is Kind.CANARY
    assert action.event is not None
    assert action.event.reason == "ModelCanaryStarted"
    made = action.canary_create
    assert made is not None
    assert made["metadata"]["name"] == "serving-canary"
    assert made["spec"]["replicas"] == 1
    assert made["spec"]["selector"] == body["spec"]["selector"]  # the same Service
    assert "mlkube.io/model-name" not in made["metadata"]["labels"]  # never managed itself
    assert made["metadata"]["ownerReferences"][0]["uid"] == "uid-serving"
    env = made["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "MODEL_VERSION", "value": "2"} in env
    labels = made["spec"]["template"]["metadata"]["labels"]
    assert labels["app"] == "serving"
    after = apply(body, action)
    assert after["spec"] == body["spec"]  # the main Deployment does not roll yet
    assert record(after)["rollout-status"] == "canary"
    assert record(after)["rollout-target"] == "2"

    assert plan.decide(after, AliasTarget("2"), now=T0 + dt.timedelta(seconds=60)).kind is (
        Kind.NOOP
    )
    late = T0 + dt.timedelta(seconds=121)
    assert plan.decide(after, AliasTarget("2"), now=late).kind is Kind.CANARY_JUDGE


def test_a_passing_canary_rolls_the_main_deployment_and_goes() -> None:
    body = apply(
        deployment("1", annotations=CANARY, uid="uid-serving"),
        plan.decide(
            deployment("1", annotations=CANARY, uid="uid-serving"), AliasTarget("2"), now=T0
        ),
    )
    late = T0 + dt.timedelta(seconds=121)
    good = observation(served(200, 1, 0.004, {"setosa": 100, "versicolor": 100}))
    action = plan.decide(body, AliasTarget("2"), now=late, canary_observed=good)
    assert action.kind is Kind.ROLL
    assert action.canary_delete == "serving-canary"
    after = apply(body, action)
    assert record(after)["rollout-status"] == "progressing"
    assert "canary passed" in record(after)["rollout-reason"]


def test_a_failing_canary_is_removed_tagged_and_moves_the_alias_back() -> None:
    body = apply(
        deployment("1", annotations=MOVE_BACK, uid="uid-serving"),
        plan.decide(
            deployment("1", annotations=MOVE_BACK, uid="uid-serving"), AliasTarget("2"), now=T0
        ),
    )
    late = T0 + dt.timedelta(seconds=121)
    bad = observation(served(150, 50, 0.004, {"setosa": 100, "versicolor": 100}))
    action = plan.decide(body, AliasTarget("2"), now=late, canary_observed=bad)
    assert action.kind is Kind.REVERT
    assert action.canary_delete == "serving-canary"
    assert action.tags[KEY_TAG] == "failed"
    assert "error rate 25.00%" in action.tags["mlkube.rollout.reason/mlkube/serving"]
    assert action.event is not None
    assert (action.event.type, action.event.reason) == ("Warning", "ModelCanaryFailed")
    assert action.alias_back == ("production", "1")
    [why] = action.alias_tags.values()
    assert "moved back here from version 2" in why
    after = apply(body, action)
    assert after["spec"] == body["spec"]
    assert record(after)["rollout-status"] == "failed"
    assert record(after)["failed-model-version"] == "2"


def test_a_canary_that_cannot_load_the_model_fails_it() -> None:
    body = apply(
        deployment("1", annotations=CANARY, uid="uid-serving"),
        plan.decide(
            deployment("1", annotations=CANARY, uid="uid-serving"), AliasTarget("2"), now=T0
        ),
    )
    late = T0 + dt.timedelta(seconds=121)
    pod = diagnosis.PodView("serving-canary-x", "2", canary=True,
                       ready_detail={"last_error": "UnpicklingError: bad"})  # fmt: skip
    seen = plan.CanaryObservation(pods=[pod], canary=Sample(), stable=STABLE)
    action = plan.decide(body, AliasTarget("2"), now=late, canary_observed=seen)
    assert action.kind is Kind.REVERT
    assert action.alias_back is None  # not asked for
    assert "UnpicklingError" in action.reason
