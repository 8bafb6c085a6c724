"""The e2e script's steps against fakes: what it checks, in which order, and what it dumps when
something is wrong. (The real run is tests/e2e/test_kind.py, on a machine with Docker and kind.)"""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any

import pytest

from deploy.e2e import replicas
from deploy.e2e import steps as e2e
from deploy.e2e.diagnostics import dump_diagnostics
from deploy.e2e.load import Load
from deploy.options import Options
from deploy.plans import plan_e2e
from deploy.runner import run_steps
from deploy.shell import StepFailed
from tests.unit.deploy.fakes import (
    INSTANCE,
    FakeCommands,
    FakeHttp,
    deployment,
    fail,
    ingress,
    kjson,
    make_ctx,
    obj,
    ok,
    service,
)

RUN_WEAK = "a" * 32
RUN_GOOD = "b" * 32
SERVING_SEL = f"{INSTANCE},mlkube.io/model-name"
LABELS = {"mlkube.io/model-name": "iris-classifier"}


def pod(name: str, terminating: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if terminating:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta}


POD_REPORT = '{"sent": 950, "failed": 0, "errors": []}\n'


def world(
    *,
    invocations: list[tuple[int, Any] | Exception] | None = None,
    pod_report: str | None = None,
) -> tuple[FakeCommands, FakeHttp]:
    cmds = FakeCommands()
    cmds.on("kubectl", "config", "get-contexts", answer=ok("kind-mlkube\n"))
    cmds.on(
        "kubectl get deployment -n mlkube -l",
        SERVING_SEL,
        answer=[
            kjson(deployment("mlkube-serving", version="1", labels=LABELS)),  # discover
            kjson(deployment("mlkube-serving", version="1", labels=LABELS)),  # weak: not yet
            kjson(deployment("mlkube-serving", version="2", labels=LABELS)),  # weak: rolled out
            kjson(deployment("mlkube-serving", version="3", updated=1, labels=LABELS)),  # rolling
            kjson(deployment("mlkube-serving", version="3", labels=LABELS)),  # rolled out
        ],
    )
    cmds.on(
        "kubectl get pod",
        answer=kjson(pod("serving-a"), pod("serving-b"), pod("serving-old", terminating=True)),
    )
    cmds.on("kubectl", "get", "service", answer=kjson(service("mlkube-mlflow", port=5000)))
    cmds.on(
        "kubectl get service -n mlkube -l",
        f"{INSTANCE},app.kubernetes.io/component=serving",
        answer=kjson(service("mlkube-serving", port=80)),
    )
    # The in-cluster load pod's report, once it is told to stop.
    cmds.on("kubectl logs -n mlkube mlkube-e2e-load", answer=ok(pod_report or POD_REPORT))
    cmds.on("kubectl", "get", "ingress", "-n", "mlkube", "-l", INSTANCE, answer=kjson(ingress()))
    cmds.on("kubectl", "get", "ingress", "mlkube-serving", answer=obj(**ingress()))
    cmds.on(
        "python -m jobs.train --model-name iris-classifier --classifier dummy",
        answer=ok(f"run {RUN_WEAK}: iris-classifier v2 PROMOTED (forced): ...\n"),
    )
    cmds.on(
        "python -m jobs.train --model-name iris-classifier --classifier logistic_regression",
        answer=ok(f"run {RUN_GOOD}: iris-classifier v3 not promoted (--no-promote)\n"),
    )
    cmds.on(
        "python -m jobs.promote",
        answer=ok(
            "PROMOTED (beats the champion): challenger f1_macro=0.9667 vs champion v2 "
            "f1_macro=0.1667\n"
        ),
    )
    http = FakeHttp()
    http.on("POST", "/invocations", *(invocations or [(200, {"predictions": ["a", "b"]})]))
    http.on("GET", "/health", (200, "OK"))
    http.on("GET", "/healthz/live", (200, {"status": "alive"}))
    # /model: through the Ingress, then the two replicas on v2, the two on v3, the Ingress again.
    http.on(
        "GET",
        "/model",
        *[(200, {"name": "iris-classifier", "version": v}) for v in ("1", "2", "2", "3", "3", "3")],
    )
    return cmds, http


def run_e2e(
    repo: Path, cmds: FakeCommands, http: FakeHttp, *, artifacts: Path | None = None
) -> tuple[int, io.StringIO]:
    """`make e2e` against the fakes, as the CLI runs it: diagnostics on failure (written to
    ``artifacts`` when given), then its cleanups."""
    ctx, out, _ = make_ctx(Options(repo=repo, artifacts=artifacts), cmds, http=http)
    try:
        return run_steps(plan_e2e(ctx.opts), ctx, on_failure=dump_diagnostics), out
    finally:
        e2e.run_cleanups(ctx)


def test_plan() -> None:
    assert [s.key for s in plan_e2e(Options(repo=Path(".")))] == [
        "tools",
        "context",
        "discover",
        "predict",
        "mlflow",
        "weak",
        "candidate",
        "promote",
        "ingress-model",
    ]


def test_full_run(repo: Path) -> None:
    cmds, http = world()
    code, out = run_e2e(repo, cmds, http)
    text = out.getvalue()
    assert code == 0, text

    # Training runs locally against MLflow through a port-forward.
    trains = [(w, env) for w, env in zip(cmds.calls, cmds.envs, strict=True) if w[0] == "python"]
    assert [w[2] for w, _ in trains] == ["jobs.train", "jobs.train", "jobs.promote"]
    assert "--force-promote" in trains[0][0]
    assert "--no-promote" in trains[1][0]
    # A rerun after a failure may repeat the champion exactly: each step still gets its version.
    assert all("--force-register" in argv for argv, _ in trains[:2])
    assert trains[2][0][3:5] == ["--run-id", RUN_GOOD]
    uri = trains[0][1]["MLFLOW_TRACKING_URI"]  # type: ignore[index]
    assert uri.startswith("http://127.0.0.1:")
    # Port-forwards: MLflow, then each live replica twice (weak, then candidate), all stopped.
    targets = [p.argv[p.argv.index("--address") + 2] for p in cmds.spawned]
    assert targets == [
        "svc/mlkube-mlflow",
        "pod/serving-a",
        "pod/serving-b",
        "pod/serving-a",
        "pod/serving-b",
    ]
    assert all(p.stopped for p in cmds.spawned)
    # The load ran through the Ingress, and nothing failed.
    posts = [r for r in http.requests if r[0] == "POST"]
    assert len(posts) >= 2 * e2e.MIN_REQUESTS
    assert all(r[1] == "http://172.18.0.5/invocations" for r in posts)
    assert "load during the rollout:" in text
    assert ", 0 failed" in text
    assert "every replica serves version 3: {'serving-a': '3', 'serving-b': '3'}" in text
    assert "/model through the Ingress: version 3" in text
    # The second load ran from a pod in the cluster, on the serving image, to the Service; it
    # was told to stop after the rollout, and deleted.
    [run] = cmds.ran("kubectl run mlkube-e2e-load")
    assert "--image=mlkube-serve:0.1.0" in run
    assert "http://mlkube-serving:80/invocations" in run
    assert cmds.ran("kubectl exec -n mlkube mlkube-e2e-load -- touch /tmp/stop")
    assert cmds.ran("kubectl delete pod mlkube-e2e-load -n mlkube --wait=false")
    assert "in-cluster load during the rollout: 950 requests, 0 failed" in text


def test_a_failed_request_from_inside_the_cluster_fails(repo: Path) -> None:
    report = '{"sent": 900, "failed": 2, "errors": ["12:00:01 URLError: refused"]}\n'
    cmds, http = world(pod_report=report)
    code, out = run_e2e(repo, cmds, http)
    assert code == 1
    assert "2 of 900 requests from inside the cluster failed" in out.getvalue()
    assert "12:00:01 URLError: refused" in out.getvalue()


def test_a_failed_request_during_the_rollout_fails_and_dumps_everything(repo: Path) -> None:
    answers: list[tuple[int, Any] | Exception] = [(200, {"predictions": ["a", "b"]})] * 12
    answers += [(502, "upstream connect error"), (200, {"predictions": ["a", "b"]})]
    cmds, http = world(invocations=answers)
    cmds.on(
        "kubectl get pods -n mlkube -o name",
        answer=ok("pod/serving-a\npod/mlkube-mlflow-0\n"),
    )
    cmds.on(
        "kubectl logs -n mlkube pod/serving-a --all-containers --prefix --previous",
        answer=fail('previous terminated container "serve" not found'),
    )
    artifacts = repo / "artifacts"
    code, out = run_e2e(repo, cmds, http, artifacts=artifacts)
    text = out.getvalue()

    assert code == 1
    assert "FAILED: Promoting it through the gate under load" in text
    assert "1 of " in text
    assert "requests through the Ingress failed during the rollout" in text
    assert "HTTP 502" in text
    # Diagnostics: get, events, describe, and every pod's logs, on the console and on disk.
    assert cmds.ran("kubectl", "describe", "all,ingress,cronjob,pvc,networkpolicy", "-n", "mlkube")
    assert cmds.ran("kubectl", "logs", "-n", "mlkube", "pod/mlkube-mlflow-0")
    assert (artifacts / "describe.txt").is_file()
    assert (artifacts / "logs-serving-a.txt").is_file()
    assert not (artifacts / "logs-previous-serving-a.txt").exists()  # it never restarted
    assert "---- kubectl get events -n mlkube --sort-by=.lastTimestamp" in text
    assert f"---- written to {artifacts}" in text
    assert all(p.stopped for p in cmds.spawned)


def test_a_replica_on_the_wrong_version_fails(repo: Path) -> None:
    cmds, http = world()
    http.on("GET", "/model", *[(200, {"version": v}) for v in ("1", "2", "1")])
    code, out = run_e2e(repo, cmds, http)
    assert code == 1
    assert "expected version 2 on 2 replicas, /model says {'serving-a': '2', 'serving-b': '1'}" in (
        out.getvalue()
    )


def test_the_gate_refusing_fails(repo: Path) -> None:
    cmds, http = world()
    cmds.on("python", "-m", "jobs.promote", answer=ok("not promoted (no better than v2)\n"))
    code, out = run_e2e(repo, cmds, http)
    assert code == 1
    assert f"the gate did not promote run {RUN_GOOD}" in out.getvalue()


# --- pure pieces -------------------------------------------------------------------------------


def test_parse_train_output() -> None:
    text = f"INFO something\nrun {RUN_GOOD}: iris-classifier v12 PROMOTED (no champion): ...\n"
    assert e2e.parse_train_output(text) == (RUN_GOOD, "12")
    with pytest.raises(StepFailed, match="cannot find 'run <id>"):
        e2e.parse_train_output("error: cannot reach MLflow")


def test_model_version_of() -> None:
    assert replicas.model_version_of({"version": "3"}) == "3"
    assert replicas.model_version_of({"model_version": 4}) == "4"
    assert replicas.model_version_of({"model": {"version": 5}}) == "5"
    assert replicas.model_version_of({"name": "x"}) is None


def test_load_is_bounded_and_counts_failures() -> None:
    calls = 0
    lock = threading.Lock()

    def send() -> int:
        nonlocal calls
        with lock:
            calls += 1
            n = calls
        if n % 5 == 0:
            raise ConnectionResetError("reset by peer")
        return 200 if n % 7 else 503

    load = Load(send, workers=3, max_requests=40, pause=0.0).start()
    assert load.wait_sent(40, timeout=10)
    report = load.stop()
    assert report.sent == 40 == calls  # never more than max_requests
    assert report.failed == 8 + 4  # every 5th raised; 7, 14, 21, 28 answered 503
    assert any("ConnectionResetError" in e for e in report.errors)
    assert any("HTTP 503" in e for e in report.errors)


def test_load_stops_at_its_deadline() -> None:
    load = Load(lambda: 200, max_requests=10**9, max_seconds=0.2, pause=0.01).start()
    assert not load.wait_sent(10**9, timeout=5)  # the workers ended on their own
    assert 0 < load.stop().sent < 10**9
