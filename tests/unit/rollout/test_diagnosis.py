"""Why a rollout is not completing (rollout.diagnosis): the cause read from the Deployment and
its new pods, the deadline of one try, and whether every new pod reports the same model load
error (and for how long that must hold)."""

from __future__ import annotations

import pytest

from rollout import diagnosis
from tests.unit.rollout.builders import (
    MODEL_ERROR,
    controller_progressing,
    deployment,
    failing_pods,
)

# -- the cause, from the new pods -----------------------------------------------------------------

CAUSES = [
    (diagnosis.PodView("p", "2", unschedulable="0/3 nodes are available: 3 Insufficient cpu."),
     diagnosis.Cause.CAPACITY),
    (diagnosis.PodView("p", "2", waiting="ImagePullBackOff", waiting_message="not found"),
     diagnosis.Cause.IMAGE),
    (diagnosis.PodView("p", "2", waiting="CreateContainerConfigError"), diagnosis.Cause.CONFIG),
    (diagnosis.PodView("p", "2", waiting="CrashLoopBackOff", terminated="Error", restarts=4),
     diagnosis.Cause.CRASH),
    (diagnosis.PodView("p", "2", waiting="CrashLoopBackOff", terminated="OOMKilled", restarts=2),
     diagnosis.Cause.MODEL),
    (diagnosis.PodView("p", "2", ready_detail={"status": "loading", "last_error": MODEL_ERROR}),
     diagnosis.Cause.MODEL),
    (diagnosis.PodView("p", "2", ready_detail={
        "status": "loading",
        "last_error": "URLError: <urlopen error [Errno 111] Connection refused>"}),
     diagnosis.Cause.REGISTRY),
    (diagnosis.PodView("p", "2", ready_detail={
        "status": "loading",
        "last_error": "EndpointConnectionError: Could not connect to the endpoint URL"}),
     diagnosis.Cause.REGISTRY),
    (diagnosis.PodView("p", "2", ready_detail={"status": "loading", "last_error": None}),
     diagnosis.Cause.SLOW),
    (diagnosis.PodView("p", "2"), diagnosis.Cause.UNKNOWN),
]  # fmt: skip


def test_the_cause_is_read_from_the_new_pods() -> None:
    body = controller_progressing(deployment("2"))
    for pod, cause in CAUSES:
        assert diagnosis.classify(body, [pod], "2")[0] is cause, pod
    # Several stories: the model's own failure is the strongest evidence.
    pods = [CAUSES[0][0], CAUSES[5][0]]
    assert diagnosis.classify(body, pods, "2")[0] is diagnosis.Cause.MODEL
    # No pod of the new version at all (quota), or the controller says it cannot create them.
    assert diagnosis.classify(body, [], "2")[0] is diagnosis.Cause.CAPACITY
    failure = {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate"}
    body["status"]["conditions"] = [{**failure, "message": "exceeded quota"}]
    assert diagnosis.classify(body, None, "2") == (
        diagnosis.Cause.CAPACITY,
        "pods cannot be created: FailedCreate: exceeded quota",
    )


def test_the_deployment_itself_can_say_why_before_the_pods() -> None:
    paused = deployment("2", rollout="progressing")
    paused["spec"]["paused"] = True
    assert diagnosis.classify(paused, [], "2")[0] is diagnosis.Cause.PAUSED
    assert diagnosis.classify(deployment("2", replicas=0), [], "2")[0] is diagnosis.Cause.NO_PODS
    body = deployment("2", rollout="progressing")
    assert diagnosis.classify(body, None, "2") == (
        diagnosis.Cause.UNKNOWN,
        "the pods could not be read",
    )
    ready = [diagnosis.PodView("p", "2", ready=True)]
    assert diagnosis.classify(body, ready, "2") == (
        diagnosis.Cause.UNKNOWN,
        "the pods of version 2 are ready but not available",
    )


def test_old_pods_are_not_the_new_pods() -> None:
    body = deployment("2", rollout="progressing")
    old = diagnosis.PodView("old", "1", waiting="ImagePullBackOff")
    assert diagnosis.classify(body, [old], "2")[0] is diagnosis.Cause.CAPACITY  # none of v2


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        (MODEL_ERROR, diagnosis.Cause.MODEL),
        ("UnpicklingError: invalid load key, 'x'.", diagnosis.Cause.MODEL),
        ("MlflowException: API request failed: 503 Service Unavailable", diagnosis.Cause.REGISTRY),
        ("ClientError: An error occurred (AccessDenied) when calling GetObject",
         diagnosis.Cause.REGISTRY),
        ("ReadTimeout: HTTPConnectionPool(host='mlflow', port=5000): Read timed out.",
         diagnosis.Cause.REGISTRY),
    ],
)  # fmt: skip
def test_a_load_error_blames_the_model_unless_it_names_the_registry(
    error: str, cause: diagnosis.Cause
) -> None:
    assert diagnosis.classify_load_error(error) is cause


# -- the deadline of one try ----------------------------------------------------------------------


def test_the_deadline_is_the_annotation_else_the_spec_and_doubles_per_retry() -> None:
    body = deployment("2")  # progressDeadlineSeconds 300
    assert [diagnosis.deadline_seconds(body, a) for a in (0, 1, 2)] == [300, 600, 1200]
    assert diagnosis.deadline_seconds(deployment("2", deadline=None)) == 600  # Kubernetes'
    annotated = deployment("2", annotations={"mlkube.io/rollout-deadline-seconds": "45"})
    assert diagnosis.deadline_seconds(annotated, 1) == 90
    unreadable = deployment("2", annotations={"mlkube.io/rollout-deadline-seconds": "soon"})
    assert diagnosis.deadline_seconds(unreadable) == 300


# -- every new pod reports the same model load error -------------------------------------------


def test_the_confirmation_time_is_the_annotation_else_30_seconds() -> None:
    def confirm(value: str | None) -> float:
        extra = {} if value is None else {"mlkube.io/load-error-confirm-seconds": value}
        return diagnosis.load_error_confirm_seconds(deployment("2", annotations=extra))

    assert confirm(None) == 30
    assert confirm("5") == 5
    assert confirm("0") == 0  # off: the deadline decides
    assert confirm("-1") == 30
    assert confirm("soon") == 30


def test_model_load_failure_needs_one_model_error_on_every_new_pod() -> None:
    pods = failing_pods("2", MODEL_ERROR)
    assert diagnosis.model_load_failure(pods, "2") == (
        f"pod(s) serving-new cannot load the model: {MODEL_ERROR}"
    )
    canary = diagnosis.PodView("canary", "2", canary=True)  # the canary's pods do not count
    assert diagnosis.model_load_failure([*pods, canary], "2") is not None
    assert diagnosis.model_load_failure(failing_pods("2", "Connection refused"), "2") is None
    loading = diagnosis.PodView("serving-new-2", "2", ready_detail={"status": "loading"})
    assert diagnosis.model_load_failure([*pods, loading], "2") is None
    assert diagnosis.model_load_failure(pods, "3") is None  # no pod of version 3: no error


# -- what the pods serve --------------------------------------------------------------------------


def test_served_by_old_pods_is_the_version_the_ready_old_pods_agree_on() -> None:
    assert diagnosis.served_by_old_pods(failing_pods("2", MODEL_ERROR), "2") == "1"
    other = diagnosis.PodView("serving-older", "0", ready=True, ready_detail={"model_version": "0"})
    assert diagnosis.served_by_old_pods([*failing_pods("2", MODEL_ERROR), other], "2") is None
    assert diagnosis.served_by_old_pods(None, "2") is None


def test_pod_version_reads_the_serving_containers_env() -> None:
    template = deployment("4", sidecar=True)["spec"]["template"]
    assert diagnosis.pod_version(template) == "4"
    assert diagnosis.pod_version({"spec": {"containers": [{"name": "serve"}]}}) is None
