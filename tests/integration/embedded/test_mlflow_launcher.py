"""The MLflow that `make up` and the tests start: one process (MLflow imported once, one uvicorn
worker on sqlite, no job runner), and still the whole server: UI, tracking, registry, proxied
artifacts, and MLflow's Host-header check."""

from __future__ import annotations

import http.client
from pathlib import Path

import pytest
from mlflow import MlflowClient

from embedded.mlflow_server import MlflowServer
from tests.procs import descendants
from tests.timeouts import HTTP_S

pytestmark = pytest.mark.integration


def get(server: MlflowServer, path: str, host: str | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=HTTP_S)
    try:
        conn.request("GET", path, headers={"Host": host} if host else {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_mlflow_is_one_process_and_the_whole_server(
    mlflow_server: MlflowServer, model_name: str, tmp_path: Path
) -> None:
    assert mlflow_server.proc is not None
    assert not descendants(mlflow_server.proc.pid)  # `mlflow server` spawns uvicorn: 2 imports

    status, body = get(mlflow_server, "/")
    assert status == 200
    assert body.lstrip().lower().startswith(b"<!doctype html")  # the UI
    status, _ = get(mlflow_server, "/api/2.0/mlflow/experiments/search?max_results=1", "x.example")
    assert status == 403  # DNS-rebinding protection, as `mlflow server` has it

    client = MlflowClient(mlflow_server.uri)
    run = client.create_run(client.create_experiment(f"{model_name}-exp"))
    (tmp_path / "note.txt").write_text("proxied")
    client.log_artifact(run.info.run_id, str(tmp_path / "note.txt"))
    stored = list((mlflow_server.state_dir / "artifacts").rglob("note.txt"))
    assert [p.read_text() for p in stored] == ["proxied"]  # --serve-artifacts: on the server
    back = client.download_artifacts(run.info.run_id, "note.txt", str(tmp_path / "back"))
    assert Path(back).read_text() == "proxied"
    client.create_registered_model(model_name)
    assert client.get_registered_model(model_name).name == model_name
