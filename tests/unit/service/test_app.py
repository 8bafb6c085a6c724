"""The app in-process (TestClient runs the lifespan): probes, errors in each dialect, limits,
metrics and OpenAPI. MLflow is unreachable here; a model is put in the store by hand."""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mlkube.core.processes import free_port
from service.app import create_app
from service.runtime.model import LoadedModel
from service.settings import Settings

ROW = [5.1, 3.5, 1.4, 0.2]


def settings(**extra: Any) -> Settings:
    return Settings(MLFLOW_TRACKING_URI=f"http://127.0.0.1:{free_port()}", MODEL_NAME="iris",
                    **extra)  # fmt: skip


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(create_app(settings(SERVE_MAX_BODY_BYTES=2048, SERVE_MAX_ROWS=20))) as c:
        yield c


@pytest.fixture
def loaded(client: TestClient, iris_model: LoadedModel) -> TestClient:
    client.app.state.dataplane.store.swap(iris_model)  # type: ignore[attr-defined]
    return client


def test_registry_down_live_but_not_ready(client: TestClient) -> None:
    assert client.get("/healthz/live").status_code == 200
    deadline = time.monotonic() + 30
    while True:  # the first attempt fails fast (connection refused)
        ready = client.get("/healthz/ready")
        if ready.json()["last_error"] or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert ready.status_code == 503
    assert ready.json()["status"] == "loading"
    assert ready.json()["model"] == "models:/iris@production"
    assert "Connection refused" in ready.json()["last_error"]
    predict = client.post("/predict", json={"instances": [ROW]})
    assert predict.status_code == 503
    assert predict.json()["error"] == "model_not_loaded"
    invocations = client.post("/invocations", json={"inputs": [ROW]})
    assert invocations.status_code == 503
    assert invocations.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
    assert client.get("/v2/health/ready").status_code == 503
    assert client.get("/v2/models/iris/ready").json() == {"name": "iris", "ready": False}
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/model").status_code == 503
    assert 'mlkube_serve_model_loads_total{result="failure"}' in client.get("/metrics").text


def test_the_collector_is_back_on_once_the_first_load_has_failed() -> None:
    """`python -m service` starts with the cyclic collector off (start-up is imports); the first
    load attempt turns it back on even when it fails, or a registry outage at start would
    collect no cycles for as long as it lasts."""
    gc.disable()
    try:
        with TestClient(create_app(settings())) as c:
            deadline = time.monotonic() + 30
            while not c.get("/healthz/ready").json()["last_error"]:
                assert time.monotonic() < deadline, "the first load attempt never failed"
                time.sleep(0.05)
            assert gc.isenabled()
    finally:
        gc.enable()


def test_predict_with_a_model(loaded: TestClient) -> None:
    answer = loaded.post("/predict", json=[ROW, dict(zip(
        ["sepal_length", "sepal_width", "petal_length", "petal_width"], [6.7, 3.0, 5.2, 2.3],
        strict=True))])  # fmt: skip
    assert answer.status_code == 200
    body = answer.json()
    assert body["predictions"] == ["setosa", "virginica"]
    assert body["model_name"] == "iris"
    assert body["model_version"] == "1"
    assert set(body["probabilities"][0]) == {"setosa", "versicolor", "virginica"}
    assert loaded.get("/healthz/ready").json() == {
        "status": "ready",
        "model_name": "iris",
        "model_version": "1",
    }


@pytest.mark.parametrize(
    ("path", "key"),
    [("/predict", "error"), ("/invocations", "error_code"), ("/v2/models/iris/infer", "error")],
)
def test_body_limit_in_each_dialect(loaded: TestClient, path: str, key: str) -> None:
    big = b'{"instances": [' + b",".join([b"[5.1, 3.5, 1.4, 0.2]"] * 200) + b"]}"
    answer = loaded.post(path, content=big, headers={"content-type": "application/json"})
    assert answer.status_code == 413
    assert key in answer.json()
    assert "SERVE_MAX_BODY_BYTES" in str(answer.json())


def test_body_limit_without_content_length(loaded: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"instances": ['
        for _ in range(300):
            yield b"[5.1, 3.5, 1.4, 0.2],"
        yield b"[5.1, 3.5, 1.4, 0.2]]}"

    answer = loaded.post("/predict", content=chunks(), headers={"content-type": "application/json"})
    assert answer.status_code == 413


def test_row_limit_names_the_setting(loaded: TestClient) -> None:
    answer = loaded.post("/predict", json={"instances": [ROW] * 21})
    assert answer.status_code == 413
    assert answer.json()["field"] == "instances"
    assert "limit of 20 rows" in answer.json()["message"]


def test_unknown_routes_and_methods(loaded: TestClient) -> None:
    assert loaded.get("/nope").status_code == 404
    assert loaded.get("/predict").status_code == 405
    assert loaded.get("/v2/models/other").status_code == 404
    assert loaded.get("/v2/models/iris/versions/9").status_code == 404
    assert loaded.get("/v2/models/iris/versions/1").json()["versions"] == ["1"]


def test_metrics_count_by_route_template(loaded: TestClient) -> None:
    for _ in range(3):
        loaded.post("/v2/models/iris/infer", json={"inputs": [
            {"name": "x", "shape": [1, 4], "datatype": "FP64", "data": ROW}]})  # fmt: skip
    loaded.get("/some/random/path")
    text = loaded.get("/metrics").text
    assert ('mlkube_serve_requests_total{method="POST",route="/v2/models/{name}/infer",'
            'status="200"} 3.0') in text  # fmt: skip
    assert 'route="<unmatched>"' in text
    assert "/some/random/path" not in text
    assert 'mlkube_serve_predictions_total{label="setosa",version="1"} 3.0' in text
    assert "mlkube_serve_batch_rows_bucket" in text
    assert "_created" not in text


def test_invocations_slow_path_is_counted(loaded: TestClient) -> None:
    """CSV goes to MLflow's own scoring: its prediction is counted as the fast path's is."""
    csv = "sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n5.0,3.4,1.5,0.2\n"
    answer = loaded.post("/invocations", content=csv, headers={"content-type": "text/csv"})
    assert answer.text == '{"predictions": ["setosa", "setosa"]}'
    text = loaded.get("/metrics").text
    assert 'mlkube_serve_predictions_total{label="setosa",version="1"} 2.0' in text


def test_probes_are_counted_apart_from_requests(client: TestClient) -> None:
    """`make up` and kubelets poll readiness: 503s while the model loads are not traffic."""
    for _ in range(4):
        assert client.get("/healthz/ready").status_code == 503
    client.get("/healthz/live")
    text = client.get("/metrics").text
    assert 'route="/healthz/ready"' not in "".join(
        line for line in text.splitlines() if line.startswith("mlkube_serve_request")
    )
    assert 'mlkube_serve_probes_total{route="/healthz/ready",status="503"} 4.0' in text
    assert 'mlkube_serve_probes_total{route="/healthz/live",status="200"} 1.0' in text


def test_ready_of_a_version_not_served_is_404_as_metadata_is(loaded: TestClient) -> None:
    ready = loaded.get("/v2/models/iris/versions/7/ready")
    metadata = loaded.get("/v2/models/iris/versions/7")
    assert ready.status_code == metadata.status_code == 404
    assert "not served here" in ready.text
    assert loaded.get("/v2/models/iris/versions/1/ready").json() == {"name": "iris", "ready": True}
    spec = loaded.get("/openapi.json").json()
    responses = spec["paths"]["/v2/models/{name}/versions/{version}/ready"]["get"]["responses"]
    assert {"200", "404", "503"} <= set(responses)


def test_openapi_and_docs(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = set(spec["paths"])
    assert {"/predict", "/invocations", "/healthz/live", "/healthz/ready", "/model", "/metrics",
            "/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer",
            "/v2/health/ready", "/v2/models/{name}/ready"} <= paths  # fmt: skip
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    model = body["schema"]["anyOf"][0]["$ref"].rsplit("/", 1)[1]
    assert "instances" in spec["components"]["schemas"][model]["properties"]
    assert client.get("/docs").status_code == 200


def test_the_api_page_needs_no_network(client: TestClient) -> None:
    """Every script and stylesheet of /docs comes from this server (air-gapped clusters)."""
    import re

    page = client.get("/docs").text
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert assets, page
    for url in assets:
        assert url.startswith("/"), f"/docs loads {url} from another host"
        assert client.get(url).status_code == 200, url
    # No ReDoc page: no maintained package ships its assets, and a CDN page is blank offline.
    assert client.get("/redoc").status_code == 404


HUGE = [1e308, 1e308, 1e308, 1e308]  # finite inputs whose scaled values overflow to infinity


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/predict", {"instances": [ROW, HUGE]}),
        ("/invocations", {"dataframe_split": {"columns": ["sepal_length", "sepal_width",
         "petal_length", "petal_width"], "data": [ROW, HUGE]}}),
        ("/v2/models/iris/infer", {"inputs": [{"name": "input-0", "shape": [2, 4],
                                               "datatype": "FP64", "data": ROW + HUGE}]}),
    ],
)  # fmt: skip
def test_an_overflowing_row_is_a_4xx_naming_it_never_a_200(
    loaded: TestClient, path: str, body: dict[str, Any]
) -> None:
    """`mlflow models serve` answers 400; a 200 with null probabilities is garbage."""
    answer = loaded.post(path, json=body)
    assert 400 <= answer.status_code < 500, answer.text
    assert "row 1" in answer.text


@pytest.mark.parametrize(
    ("path", "body", "content_type"),
    [
        ("/invocations", {"dataframe_split": {"columns": ["sepal_length", "sepal_width",
         "petal_length", "petal_width"], "index": list(range(21)), "data": [ROW] * 21}}, None),
        ("/invocations", {"dataframe_split": {"columns": ["sepal_length", "sepal_width",
         "petal_length", "petal_width"], "data": [ROW] * 21}, "params": {}}, None),
        ("/invocations", {"inputs": [ROW] * 21, "params": {}}, None),
        ("/invocations", "sepal_length,sepal_width,petal_length,petal_width\n"
         + "5.1,3.5,1.4,0.2\n" * 21, "text/csv"),
        ("/predict", {"instances": [ROW] * 21}, None),
        ("/v2/models/iris/infer", {"inputs": [{"name": "input-0", "shape": [21, 4],
                                               "datatype": "FP64", "data": ROW * 21}]}, None),
    ],
)  # fmt: skip
def test_the_row_limit_holds_for_every_request_shape(
    loaded: TestClient, path: str, body: Any, content_type: str | None
) -> None:
    """SERVE_MAX_ROWS (20 here) is one limit: MLflow's own client sends `index`, and CSV or
    `params` must not slip past it either."""
    if content_type:
        answer = loaded.post(path, content=body, headers={"content-type": content_type})
    else:
        answer = loaded.post(path, json=body)
    assert answer.status_code == 413, answer.text[:300]
    assert "SERVE_MAX_ROWS" in answer.text or "limit of 20 rows" in answer.text
