"""MLflow down at start: the pod is live but not ready, keeps retrying, becomes ready once
MLflow is back, and keeps serving when MLflow goes away again."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from embedded.mlflow_server import MlflowServer
from mlkube.core.processes import free_port
from tests.integration.service.conftest import ServiceProcess, train
from tests.timeouts import HTTP_S, PROCESS_START_S, SLOW_TEST_S

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(SLOW_TEST_S)]

ROW = [[5.1, 3.5, 1.4, 0.2]]


def test_ready_only_once_the_registry_answers(tmp_path: Path) -> None:
    state = tmp_path / "mlflow"
    with MlflowServer(state_dir=state, port=free_port()) as first:  # a registry with a model
        version = train(first.uri, "down-iris")
    port = free_port()  # where nothing listens yet
    with ServiceProcess(
        tmp_path / "service.log", MLFLOW_TRACKING_URI=f"http://127.0.0.1:{port}",
        MODEL_NAME="down-iris", SERVE_BATCHING="false",
    ) as service:  # fmt: skip
        service.wait("/healthz/live")
        service.eventually(
            lambda: (
                httpx.get(service.url + "/healthz/ready", timeout=HTTP_S).json().get("last_error")
            ),
            "the first failed attempt reported",
            timeout=PROCESS_START_S,
        )
        ready = httpx.get(service.url + "/healthz/ready", timeout=HTTP_S)
        assert ready.status_code == 503
        assert "Connection refused" in ready.json()["last_error"]
        assert httpx.post(service.url + "/predict", json=ROW, timeout=HTTP_S).status_code == 503
        assert httpx.get(service.url + "/v2/health/ready", timeout=HTTP_S).status_code == 503

        with MlflowServer(state_dir=state, port=port):  # the registry comes back
            ready = service.wait("/healthz/ready", 200)
            assert ready.json()["model_version"] == version
        # ...and goes away again: the loaded model is still served
        answer = httpx.post(service.url + "/predict", json=ROW, timeout=HTTP_S)
        assert answer.status_code == 200
        assert answer.json()["predictions"] == ["setosa"]
        assert answer.json()["model_version"] == version
        assert httpx.get(service.url + "/healthz/ready", timeout=HTTP_S).status_code == 200
