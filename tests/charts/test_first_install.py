"""A cold first install converges by itself: MLflow waits (bounded) for its database before it
migrates, and the webhook registration hook, which needs MLflow, outlasts MLflow's longest
first start; the deploy gives Helm at least that long."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from deploy.release import webhook_hook_deadline
from tests.charts.manifests import Doc, Rendered, component, name

pytestmark = pytest.mark.charts

# A Job's pod backoff: 10 s, doubling, at most 6 minutes (kube-controller-manager).
BACKOFF_START_S, BACKOFF_CAP_S = 10, 360


def _env(container: Doc) -> dict[str, Doc]:
    return {e["name"]: e for e in container.get("env", [])}


def _wait_container(rendered: Rendered) -> Doc:
    init = rendered.get("Deployment", name("mlflow"))["spec"]["template"]["spec"]["initContainers"]
    assert init[0]["name"] == "wait-for-db", [c["name"] for c in init]
    return dict(init[0])


def test_mlflow_waits_for_its_database_before_migrating(rendered: Rendered) -> None:
    m = rendered.values["mlflow"]
    if not m["enabled"]:
        return
    template = rendered.get("Deployment", name("mlflow"))["spec"]["template"]
    init = template["spec"]["initContainers"]
    if m["backend"]["type"] == "sqlite":  # a file on the volume: nothing to wait for
        assert [c["name"] for c in init] == ["db-upgrade"]
        return
    assert [c["name"] for c in init] == ["wait-for-db", "db-upgrade"]
    wait, upgrade = init
    assert wait["image"] == upgrade["image"] == template["spec"]["containers"][0]["image"]
    assert wait["command"][:2] == ["python", "-c"]
    env = _env(wait)
    assert env["MLFLOW_BACKEND_STORE_URI"] == _env(upgrade)["MLFLOW_BACKEND_STORE_URI"]
    assert env["DB_WAIT_SECONDS"]["value"] == str(m["backend"]["waitSeconds"])


def _run_wait(rendered: Rendered, uri: str, seconds: int) -> subprocess.CompletedProcess[str]:
    script = _wait_container(rendered)["command"][2]
    env = {**os.environ, "MLFLOW_BACKEND_STORE_URI": uri, "DB_WAIT_SECONDS": str(seconds)}
    return subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_wait_is_bounded_and_never_prints_the_password(renders: dict[str, Rendered]) -> None:
    rendered = renders["postgres-auth-values"]
    port = _closed_port()
    started = time.monotonic()
    proc = _run_wait(rendered, f"postgresql+psycopg2://mlflow:s3cr3t@127.0.0.1:{port}/mlflow", 2)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert time.monotonic() - started < 30
    assert f"database at 127.0.0.1:{port} not ready after 2s" in proc.stderr
    assert "s3cr3t" not in proc.stdout + proc.stderr


def test_the_wait_ends_when_the_database_listens(renders: dict[str, Rendered]) -> None:
    """Any other database (an external MySQL, say): its TCP port accepting is enough."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        proc = _run_wait(renders["eks"], f"mysql+pymysql://u:p@127.0.0.1:{port}/mlflow", 10)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"database at 127.0.0.1:{port} accepts connections" in proc.stdout


def test_webhook_hook_outlasts_mlflows_first_start(rendered: Rendered) -> None:
    hooks = [j for j in rendered.of_kind("Job") if component(j) == "rollout-webhook"]
    if not hooks:
        return
    (hook,) = hooks
    spec = hook["spec"]
    deadline = spec["activeDeadlineSeconds"]
    # The deploy sizes Helm's --timeout from the same number (Helm waits for a hook that long).
    assert deadline == webhook_hook_deadline(rendered.values)
    m = rendered.values["mlflow"]
    if m["enabled"]:
        # pull + migration + startup probe (300 + 120 + 300), plus the database wait, plus the
        # hook's own 120 s.
        wait = 0 if m["backend"]["type"] == "sqlite" else m["backend"]["waitSeconds"]
        assert deadline >= 840 + wait
    # The retries never run out before the deadline: the deadline is what ends the hook.
    backoff = sum(min(BACKOFF_START_S * 2**i, BACKOFF_CAP_S) for i in range(spec["backoffLimit"]))
    assert backoff >= deadline
