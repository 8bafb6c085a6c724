"""How the operator reads the API server's refusals of its JSON patches.

Only someone writing first is a conflict worth re-reading and retrying: a 409 (the
resourceVersion precondition), or a failed JSON-patch ``test`` op. The real API server answers
the latter with a bare 422 "the server rejected our request due to an error in our request" (the
failing op is not named), so the operator looks whether the object moved on. Any other 422 (an
invalid object, a patch that does not apply to the unchanged object) is reported as it is.
"""

from __future__ import annotations

import functools
import http.server
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from rollout import diagnosis, patches, plan
from rollout.kube import Conflict, Kube, PatchRejected
from rollout.metrics import Metrics
from rollout.reconciler import Reconciler
from tests.unit.rollout.builders import deployment

PATH = "/apis/apps/v1/namespaces/serving/deployments/web"
GENERIC_422 = {
    "kind": "Status",
    "apiVersion": "v1",
    "status": "Failure",
    "message": "the server rejected our request due to an error in our request",
    "reason": "Invalid",
    "details": {},
    "code": 422,
}
INVALID_OBJECT = {
    "kind": "Status",
    "apiVersion": "v1",
    "status": "Failure",
    "message": 'Deployment.apps "web" is invalid: spec.template.spec.containers[0].env[2].name: '
    'Invalid value: "": a valid environment variable name must not be empty',
    "reason": "Invalid",
    "details": {
        "name": "web",
        "group": "apps",
        "kind": "Deployment",
        "causes": [
            {
                "reason": "FieldValueInvalid",
                "message": 'Invalid value: "": must not be empty',
                "field": "spec.template.spec.containers[0].env[2].name",
            }
        ],
    },
    "code": 422,
}
CONFLICT_409 = {
    "kind": "Status",
    "apiVersion": "v1",
    "status": "Failure",
    "message": 'Operation cannot be fulfilled on deployments.apps "web": the object has been '
    "modified; please apply your changes to the latest version and try again",
    "reason": "Conflict",
    "code": 409,
}
TEST_FAILED_422 = {**GENERIC_422, "message": "testing value /spec/template failed: test failed"}


# The shared builder, as the Deployment these tests patch: serving/web, model m, one replica.
web = functools.partial(
    deployment, name="web", namespace="serving", model="m", replicas=1, generation=2
)


class StubApiServer:
    """Answers PATCH with the next scripted (status, body); GET with ``current``."""

    def __init__(self) -> None:
        self.patch_answers: list[tuple[int, dict[str, Any]]] = []
        self.current: dict[str, Any] = web(resource_version="7")
        self.requests: list[str] = []
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                stub.requests.append(f"GET {self.path}")
                self._send(200, stub.current)

            def do_PATCH(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                stub.requests.append(f"PATCH {self.path}")
                self._send(*stub.patch_answers.pop(0))

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def api() -> Iterator[StubApiServer]:
    server = StubApiServer()
    yield server
    server.close()


@pytest.fixture
def kube(api: StubApiServer) -> Iterator[Kube]:
    configuration = client.Configuration()
    configuration.host = api.url
    k = Kube(configuration)
    yield k
    k.close()


# A patch as the reconciler sends it: the precondition, a test guarding a list position, a write.
OPS = patches.with_precondition(
    web(resource_version="7"),
    [
        {"op": "test", "path": "/spec/template/spec/containers/0/env/1/name", "value": "X"},
        {"op": "replace", "path": "/spec/template/spec/containers/0/env/1/value", "value": "2"},
    ],
)


def test_bare_422_on_an_object_that_moved_on_is_a_conflict(api: StubApiServer, kube: Kube) -> None:
    api.patch_answers = [(422, GENERIC_422)]
    api.current = web(resource_version="8")  # someone wrote after we read version 7
    with pytest.raises(Conflict, match="changed under us \\(resourceVersion 7 -> 8\\)"):
        kube.patch("serving", "web", OPS)
    assert api.requests == [f"PATCH {PATH}", f"GET {PATH}"]


def test_bare_422_on_an_unchanged_object_is_a_rejected_patch(
    api: StubApiServer, kube: Kube
) -> None:
    api.patch_answers = [(422, GENERIC_422)]
    with pytest.raises(PatchRejected, match="does not apply to the unchanged object"):
        kube.patch("serving", "web", OPS)


def test_invalid_object_is_rejected_with_the_servers_reasons(
    api: StubApiServer, kube: Kube
) -> None:
    api.patch_answers = [(422, INVALID_OBJECT)]
    with pytest.raises(PatchRejected) as caught:
        kube.patch("serving", "web", OPS)
    text = str(caught.value)
    assert text.startswith(
        'serving/web: 422 Unprocessable Entity: Deployment.apps "web" is invalid'
    )
    assert "spec.template.spec.containers[0].env[2].name: Invalid value" in text
    assert api.requests == [f"PATCH {PATH}"]  # no need to look: the server said why


@pytest.mark.parametrize("answer", [(409, CONFLICT_409), (422, TEST_FAILED_422)])
def test_409_and_a_named_test_failure_are_conflicts(
    api: StubApiServer, kube: Kube, answer: tuple[int, dict[str, Any]]
) -> None:
    api.patch_answers = [answer]
    with pytest.raises(Conflict):
        kube.patch("serving", "web", OPS)
    assert api.requests == [f"PATCH {PATH}"]


def test_gone_is_none(api: StubApiServer, kube: Kube) -> None:
    api.patch_answers = [(404, {"kind": "Status", "code": 404, "reason": "NotFound"})]
    assert kube.patch("serving", "web", OPS) is None


# --- what the reconciler does with them ----------------------------------------------------------


class FakeKube:
    def __init__(self, error: Exception) -> None:
        self.error = error
        self.patches = 0
        self.events: list[plan.Event] = []
        self.current = web(resource_version="7")

    def read(self, namespace: str, name: str) -> dict[str, Any]:
        return self.current

    def patch(self, namespace: str, name: str, ops: patches.JsonPatch) -> dict[str, Any]:
        self.patches += 1
        raise self.error

    def pods(self, body: Any) -> list[diagnosis.PodView]:
        return []

    def emit(self, body: Any, event: plan.Event) -> None:
        self.events.append(event)


class FakeRegistry:
    def resolve(self, model_name: str, alias: str) -> plan.AliasTarget:
        return plan.AliasTarget("2")

    def tag(self, model_name: str, version: str, value: str) -> None:
        raise AssertionError("nothing was patched: nothing to tag")


def reconcile(kube: FakeKube) -> tuple[plan.Action, Metrics]:
    metrics = Metrics()
    reconciler = Reconciler(kube, FakeRegistry(), metrics)  # type: ignore[arg-type]
    return reconciler.reconcile("serving", "web", trigger="poll"), metrics


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rejected_patch_is_a_warning_event_and_backs_off(caplog: pytest.LogCaptureFixture) -> None:
    kube = FakeKube(
        PatchRejected("serving/web: 403 Forbidden: admission webhook denied: frozen namespace")
    )
    metrics = Metrics()
    reconciler = Reconciler(kube, FakeRegistry(), metrics)  # type: ignore[arg-type]
    clock = Clock()
    reconciler.clock = clock
    with caplog.at_level(logging.WARNING, logger="rollout.reconciler"):
        action = reconciler.reconcile("serving", "web", trigger="poll")
    assert kube.patches == 1
    assert action.kind is plan.Kind.NOOP
    assert action.reason.startswith("patch rejected: serving/web: 403 Forbidden")
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert record.exc_info is None  # the server's reason, not a traceback
    assert "frozen namespace" in record.getMessage()
    [event] = kube.events
    assert (event.type, event.reason) == ("Warning", "ModelRolloutPatchDenied")
    assert "frozen namespace" in event.message
    errors = metrics.registry.get_sample_value(
        "mlkube_rollout_reconciles_total", {"trigger": "poll", "action": "error"}
    )
    assert errors == 1

    # Polls and webhooks within the backoff send nothing; a changed Deployment is tried at once.
    clock.now += 29
    reconciler.reconcile("serving", "web", trigger="webhook")
    assert kube.patches == 1
    kube.current = web(resource_version="8")
    reconciler.reconcile("serving", "web", trigger="event")
    assert kube.patches == 2
    # The backoff grows: 30 s, then 60 s.
    clock.now += 59
    reconciler.reconcile("serving", "web", trigger="poll")
    assert kube.patches == 2
    clock.now += 2
    reconciler.reconcile("serving", "web", trigger="poll")
    assert kube.patches == 3
    assert [e.reason for e in kube.events] == ["ModelRolloutPatchDenied"] * 3


def test_a_denied_revert_is_reported_loudly(caplog: pytest.LogCaptureFixture) -> None:
    kube = FakeKube(PatchRejected("serving/web: 403 Forbidden: policy says no"))
    body = web("2", resource_version="7")
    body["metadata"]["annotations"].update({
        "mlkube.io/rollout-status": "progressing",
        "mlkube.io/stable-model-version": "1",
    })  # fmt: skip
    body["status"]["conditions"] = [
        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
    ]
    kube.current = body
    kube.pods = lambda _: [  # type: ignore[method-assign]
        diagnosis.PodView("web-new", "2", ready_detail={"last_error": "UnpicklingError: bad"})
    ]
    with caplog.at_level(logging.ERROR, logger="rollout.reconciler"):
        reconcile(kube)
    assert "REVERT DENIED" in caplog.text
    [event] = kube.events
    assert (event.type, event.reason) == ("Warning", "ModelRevertDenied")
    assert "going back to version 1" in event.message


def test_conflicts_are_re_read_and_retried_a_bounded_number_of_times() -> None:
    kube = FakeKube(Conflict("serving/web: 409 Conflict"))
    action, _ = reconcile(kube)
    assert kube.patches == 5
    assert action.reason == "conflicts"


def test_pod_view_reads_what_a_pod_says_about_itself() -> None:
    from rollout.kube import pod_view, serving_port

    pod = {
        "metadata": {"name": "web-7d9-x"},
        "spec": {
            "containers": [
                {"name": "proxy", "ports": [{"containerPort": 15001}]},
                {
                    "name": "serve",
                    "env": [{"name": "MODEL_NAME", "value": "m"},
                            {"name": "MODEL_VERSION", "value": "3"}],
                    "ports": [{"name": "metrics", "containerPort": 9090},
                              {"name": "http", "containerPort": 8080}],
                },
            ]
        },
        "status": {
            "podIP": "10.0.0.7",
            "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Ready", "status": "False", "reason": "ContainersNotReady"},
            ],
            "containerStatuses": [
                {"name": "proxy", "ready": True, "restartCount": 0, "state": {"running": {}}},
                {
                    "name": "serve",
                    "ready": False,
                    "restartCount": 3,
                    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}},
                    "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}},
                },
            ],
        },
    }  # fmt: skip
    assert serving_port(pod) == 8080
    assert pod_view(pod) == diagnosis.PodView(
        name="web-7d9-x", version="3", ready=False, waiting="CrashLoopBackOff",
        waiting_message="back-off", terminated="OOMKilled", restarts=3,
    )  # fmt: skip
    pending = {
        "metadata": {"name": "web-7d9-y"},
        "spec": pod["spec"],
        "status": {"conditions": [{"type": "PodScheduled", "status": "False",
                                   "reason": "Unschedulable",
                                   "message": "0/1 nodes are available: 1 Insufficient cpu."}]},
    }  # fmt: skip
    assert pod_view(pending).unschedulable == "0/1 nodes are available: 1 Insufficient cpu."
