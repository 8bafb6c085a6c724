"""Why a rollout is not completing (rollout.diagnosis): the cause read from the Deployment and
its new pods, the deadline of one try, and whether every new pod reports the same model load
error (and for how long that must hold)."""

from __future__ import annotations

from rollout import diagnosis
from tests.unit.rollout.builders import MODEL_ERROR, controller_progressing, deployment

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
