"""The four images, run exactly as the rendered chart runs them (user, read-only root, dropped
capabilities, no-new-privileges, limits, mounts, env, command), talking over a container network
by the names the chart's Services give them: MLflow migrates its database and serves, the
training Job registers and promotes v1, the model server answers, the webhook Job registers the
operator's webhook. Every process runs as UID 10001 and writes nothing outside its mounts."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from mlflow import MlflowClient

from tests.containers.conftest import render
from tests.containers.engine import Chart, Engine, Pod, running, wait_http
from tests.timeouts import CONTAINER_JOB_S, PROCESS_START_S

RUNTIME_UID = "10001"
MODEL = "iris-classifier"
SAMPLE = {
    "dataframe_split": {
        "columns": ["sepal_length", "sepal_width", "petal_length", "petal_width"],
        "data": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]],
    }
}


@dataclass
class Stack:
    engine: Engine
    chart: Chart
    images: dict[str, str]
    network: str
    mlflow: str  # the MLflow server's container
    mlflow_uri: str  # as this test process reaches it (a published loopback port)

    def pod(self, kind: str, name: str) -> Pod:
        return Pod(self.chart, self.chart.pod(kind, name))

    def run_job(self, kind: str, name: str, container: str, image: str) -> tuple[str, int]:
        """Runs a Job's (or a CronJob's) container to completion: (container, exit code)."""
        with running(
            self.engine, self.pod(kind, name), container, network=self.network, image=image
        ) as ctr:
            code = self.engine.wait(ctr, CONTAINER_JOB_S)
        return ctr, code


def start_mlflow(
    engine: Engine, chart: Chart, images: dict[str, str], tmp_path: Any
) -> tuple[str, str, str]:
    """The MLflow Deployment: its db-upgrade init container to completion, then the server,
    reachable as the Service's names. Returns (network, container, uri from this host)."""
    network = engine.network()
    spec = chart.pod("Deployment", "mlkube-mlflow")
    claims = {
        v["persistentVolumeClaim"]["claimName"]: engine.volume(
            v["persistentVolumeClaim"]["claimName"],
            fs_group=spec.get("securityContext", {}).get("fsGroup"),
            image=images["mlflow"],
        )
        for v in spec.get("volumes", [])
        if "persistentVolumeClaim" in v
    }
    pod = Pod(chart, spec, volumes=claims, files=tmp_path)
    with running(engine, pod, "db-upgrade", network=network, init=True) as init:
        code = engine.wait(init, CONTAINER_JOB_S)
        assert code == 0, f"mlflow db upgrade exited {code}:\n{engine.logs(init)}"
    with running(
        engine, pod, "mlflow", network=network,
        aliases=chart.service_aliases("mlkube-mlflow"), publish=5000,
    ) as server:  # fmt: skip
        uri = f"http://127.0.0.1:{engine.published_port(server, 5000)}"
        wait_http(f"{uri}/health", PROCESS_START_S, "MLflow", lambda: engine.logs(server))
    return network, server, uri


@pytest.fixture(scope="module")
def stack(
    engine: Engine, images: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    chart = render()
    network, server, uri = start_mlflow(engine, chart, images, tmp_path_factory.mktemp("files"))
    return Stack(engine, chart, images, network, server, uri)


@pytest.fixture(scope="module")
def trained(stack: Stack) -> str:
    """The daily CronJob's container, run once: the container (stopped, kept for inspection)."""
    ctr, code = stack.run_job("CronJob", "mlkube-training", "train", stack.images["train"])
    assert code == 0, f"the training job exited {code}:\n{stack.engine.logs(ctr)}"
    return ctr


def assert_runs_as_10001(engine: Engine, container: str) -> None:
    procs = engine.processes(container)
    assert procs, f"no process found in {container}"
    wrong = [p for p in procs if (p["uid"], p["euid"]) != (RUNTIME_UID, RUNTIME_UID)]
    assert not wrong, f"processes not running as {RUNTIME_UID}: {wrong}"


def assert_writes_only_to_mounts(engine: Engine, container: str) -> None:
    changed = engine.changed_paths(container)
    assert not changed, f"{container} changed its image's filesystem: {changed}"


def http_json(url: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as resp:
        return resp.status, json.loads(resp.read())


def test_mlflow_migrates_and_serves_read_only_as_10001(stack: Stack) -> None:
    assert_runs_as_10001(stack.engine, stack.mlflow)
    assert_writes_only_to_mounts(stack.engine, stack.mlflow)
    # No job runner and no huey consumers (seven processes of ~230 MB each by default): the
    # server and its one worker fit the chart's memory limit.
    commands = [p["cmd"] for p in stack.engine.processes(stack.mlflow)]
    assert not [c for c in commands if "huey" in c or "_job_runner" in c], commands
    status, body = http_json(f"{stack.mlflow_uri}/api/2.0/mlflow/experiments/search",
                             {"max_results": 1})  # fmt: skip
    assert status == 200
    assert body["experiments"][0]["name"] == "Default"


def test_training_job_registers_and_promotes_v1(stack: Stack, trained: str) -> None:
    client = MlflowClient(stack.mlflow_uri)
    version = client.get_model_version_by_alias(MODEL, "production")
    assert version.version == "1"
    assert version.tags["mlkube.decision"] == "promoted"
    # Its identity, which the next run compares itself with; in the image (no git), the code is
    # a hash of the image's source.
    assert version.tags["mlkube.identity.code"].startswith("mlkube 0.1.0, source "), version.tags
    assert version.tags["mlkube.identity.data"].startswith("sha256:")
    assert_writes_only_to_mounts(stack.engine, trained)


def test_model_server_predicts_as_10001(stack: Stack, trained: str) -> None:
    with running(
        stack.engine, stack.pod("Deployment", "mlkube-serving"), "serve",
        network=stack.network, aliases=stack.chart.service_aliases("mlkube-serving"),
        publish=8080, image=stack.images["serve"],
    ) as server:  # fmt: skip
        base = f"http://127.0.0.1:{stack.engine.published_port(server, 8080)}"
        wait_http(f"{base}/healthz/ready", PROCESS_START_S, "the model server",
                  lambda: stack.engine.logs(server))  # fmt: skip
        status, answer = http_json(f"{base}/invocations", SAMPLE)
        assert status == 200
        assert len(answer["predictions"]) == 2
        status, model = http_json(f"{base}/model")
        assert (model["name"], str(model["version"])) == (MODEL, "1")
        assert_runs_as_10001(stack.engine, server)
        assert_writes_only_to_mounts(stack.engine, server)


def test_webhook_job_registers_the_operators_webhook(stack: Stack) -> None:
    ctr, code = stack.run_job(
        "Job", "mlkube-rollout-webhook", "register-webhook", stack.images["rollout"]
    )
    assert code == 0, f"register-webhook exited {code}:\n{stack.engine.logs(ctr)}"
    hooks = list(MlflowClient(stack.mlflow_uri).list_webhooks())
    urls = [h.url for h in hooks]
    assert "http://mlkube-rollout.mlkube.svc:8000/webhook" in urls, urls
    assert_writes_only_to_mounts(stack.engine, ctr)


def test_mlflow_basic_auth_refuses_strangers_and_serves_the_charts_clients(
    engine: Engine, images: dict[str, str], tmp_path: Any
) -> None:
    """With mlflow.auth.enabled: the server starts (Flask-WTF is in the image), refuses an
    anonymous call, and the training Job logs in with the credentials the chart gives it."""
    chart = render("mlflow.auth.enabled=true")
    network, server, uri = start_mlflow(engine, chart, images, tmp_path)
    search = f"{uri}/api/2.0/mlflow/registered-models/search"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(search, timeout=30)
    assert refused.value.code == 401
    pod = Pod(chart, chart.pod("CronJob", "mlkube-training"))
    with running(engine, pod, "train", network=network, image=images["train"]) as job:
        code = engine.wait(job, CONTAINER_JOB_S)
    assert code == 0, f"training against the auth server exited {code}:\n{engine.logs(job)}"
    assert_runs_as_10001(engine, server)


# Size budgets, from the sizes measured on the local Debian base (mlflow 904, train 686, serve
# 561 with Swagger UI, rollout 415 MB) plus room to grow: a new dependency that crosses one is a
# decision to make on purpose (deploy/README.md, "Images"). The base is 160 MB of them.
BUDGET_MB = {"mlflow": 1000, "train": 750, "serve": 600, "rollout": 450}


def test_images_stay_within_their_size_budgets(engine: Engine, images: dict[str, str]) -> None:
    sizes = {
        component: int(engine("image", "inspect", "--format", "{{.Size}}", ref)) / 1e6
        for component, ref in images.items()
    }
    over = {c: f"{mb:.0f} MB > {BUDGET_MB[c]} MB" for c, mb in sizes.items() if mb > BUDGET_MB[c]}
    assert not over, f"images over their size budget: {over}"
