"""Every endpoint and format against the real server, with the model the training job
registered."""

from __future__ import annotations

import asyncio
import json
import random

import httpx
import pytest

from tests.integration.service.conftest import FEATURES, RegisteredModel, ServiceProcess

pytestmark = pytest.mark.integration

SETOSA = [5.1, 3.5, 1.4, 0.2]
VIRGINICA = [6.7, 3.0, 5.2, 2.3]
CLASSES = {"setosa", "versicolor", "virginica"}


def record(row: list[float]) -> dict[str, float]:
    return dict(zip(FEATURES, row, strict=True))


def test_probes_and_model_info(client: httpx.Client, registered_model: RegisteredModel) -> None:
    assert client.get("/healthz/live").status_code == 200
    ready = client.get("/healthz/ready")
    assert ready.status_code == 200
    assert ready.json()["model_version"] == registered_model.version
    info = client.get("/model").json()
    assert info["name"] == registered_model.name
    assert info["version"] == registered_model.version
    assert info["alias"] == "production"
    assert info["run_id"]
    assert info["fast_path"] == "numpy-linear"
    assert info["classes"] == sorted(CLASSES)
    assert [c["name"] for c in info["inputs"]] == FEATURES
    assert info["signature"]["inputs"]
    assert info["loaded_at"].startswith("20")
    assert client.get("/ping").status_code == 200
    assert client.get("/version").text.startswith("3.")
    assert client.get("/docs").status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"instances": [SETOSA, VIRGINICA]},
        {"instances": [record(SETOSA), record(VIRGINICA)]},
        [SETOSA, record(VIRGINICA)],
    ],
    ids=["lists", "records", "bare-list"],
)
def test_predict(client: httpx.Client, registered_model: RegisteredModel, body: object) -> None:
    answer = client.post("/predict", json=body)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["predictions"] == ["setosa", "virginica"]
    assert result["model_name"] == registered_model.name
    assert result["model_version"] == registered_model.version
    setosa, virginica = result["probabilities"]
    assert set(setosa) == CLASSES
    assert max(setosa, key=setosa.__getitem__) == "setosa"
    assert max(virginica, key=virginica.__getitem__) == "virginica"
    assert sum(setosa.values()) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "body",
    [
        {"dataframe_split": {"columns": FEATURES, "data": [SETOSA, VIRGINICA]}},
        {"dataframe_records": [record(SETOSA), record(VIRGINICA)]},
        {"instances": [record(SETOSA), record(VIRGINICA)]},
        {"inputs": {name: [SETOSA[i], VIRGINICA[i]] for i, name in enumerate(FEATURES)}},
    ],
    ids=["dataframe_split", "dataframe_records", "instances", "inputs"],
)
def test_invocations_json(client: httpx.Client, body: object) -> None:
    answer = client.post("/invocations", json=body)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.content == b'{"predictions": ["setosa", "virginica"]}'


def test_invocations_csv(client: httpx.Client) -> None:
    csv = ",".join(FEATURES) + "\n" + ",".join(map(str, SETOSA)) + "\n"
    answer = client.post("/invocations", content=csv, headers={"content-type": "text/csv"})
    assert answer.status_code == 200
    assert answer.json() == {"predictions": ["setosa"]}


def test_v2(client: httpx.Client, registered_model: RegisteredModel) -> None:
    name, version = registered_model.name, registered_model.version
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2").json()["name"] == "mlkube"
    assert client.get(f"/v2/models/{name}/ready").json() == {"name": name, "ready": True}
    assert client.get(f"/v2/models/{name}/versions/{version}/ready").status_code == 200
    meta = client.get(f"/v2/models/{name}").json()
    assert meta["versions"] == [version]
    assert [i["name"] for i in meta["inputs"]] == FEATURES
    assert client.get(f"/v2/models/{name}/versions/{version}").json() == meta
    tensor = {"name": "input-0", "shape": [2, 4], "datatype": "FP64", "data": [SETOSA, VIRGINICA]}
    for path in (f"/v2/models/{name}/infer", f"/v2/models/{name}/versions/{version}/infer"):
        answer = client.post(path, json={"id": "abc", "inputs": [tensor],
                                         "outputs": [{"name": "predict"},
                                                     {"name": "predict_proba"}]})  # fmt: skip
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["id"] == "abc"
        assert body["model_version"] == version
        assert body["outputs"][0]["data"] == ["setosa", "virginica"]
        assert body["outputs"][1]["shape"] == [2, 3]
    per_feature = [{"name": n, "shape": [1], "datatype": "FP64", "data": [SETOSA[i]]}
                   for i, n in enumerate(FEATURES)]  # fmt: skip
    answer = client.post(f"/v2/models/{name}/infer", json={"inputs": per_feature})
    assert answer.json()["outputs"] == [
        {"name": "predict", "datatype": "BYTES", "shape": [1], "data": ["setosa"]}
    ]
    assert client.post("/v2/models/other/infer", json={"inputs": [tensor]}).status_code == 404
    wrong = client.post(f"/v2/models/{name}/versions/999/infer", json={"inputs": [tensor]})
    assert wrong.status_code == 404
    assert "999" in wrong.json()["error"]


def test_concurrent_requests_each_get_their_own_rows(
    client: httpx.Client, served: ServiceProcess
) -> None:
    """Many simultaneous requests with different rows (batched together by the server): each
    answer equals the answer the same rows get alone."""
    rng = random.Random(3)
    bodies = [
        [[round(rng.uniform(4, 8), 1), round(rng.uniform(2, 4.5), 1), round(rng.uniform(1, 7), 1),
          round(rng.uniform(0.1, 2.5), 1)] for _ in range(rng.randint(1, 4))]
        for _ in range(60)
    ]  # fmt: skip
    alone = [client.post("/predict", json={"instances": b}).json()["predictions"] for b in bodies]
    batches_before = _batched_calls(client)

    async def all_at_once() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=served.url, timeout=30) as c:
            return await asyncio.gather(
                *(c.post("/predict", json={"instances": b}) for b in bodies)
            )

    together = asyncio.run(all_at_once())
    assert [r.json()["predictions"] for r in together] == alone
    assert _batched_calls(client) > batches_before, "no request shared a predict call"


def _batched_calls(client: httpx.Client) -> float:
    """Predict calls that served more than one request (from the batch-size histogram)."""
    text = client.get("/metrics").text
    total = one = 0.0
    for line in text.splitlines():
        if line.startswith("mlkube_serve_batch_requests_count"):
            total = float(line.split()[-1])
        if line.startswith('mlkube_serve_batch_requests_bucket{le="1.0"}'):
            one = float(line.split()[-1])
    return total - one


def test_metrics(client: httpx.Client, registered_model: RegisteredModel) -> None:
    client.post("/predict", json={"instances": [SETOSA, SETOSA]})
    client.post("/predict", json={"instances": "nope"})
    text = client.get("/metrics").text
    version = registered_model.version

    def value(prefix: str) -> float:
        lines = [ln for ln in text.splitlines() if ln.startswith(prefix)]
        assert lines, f"no {prefix} in /metrics"
        return float(lines[0].split()[-1])

    assert value('mlkube_serve_requests_total{method="POST",route="/predict",status="200"}') >= 1
    assert value('mlkube_serve_requests_total{method="POST",route="/predict",status="422"}') >= 1
    assert value('mlkube_serve_request_duration_seconds_count{method="POST",route="/predict",'
                 'status="200"}') >= 1  # fmt: skip
    assert value(f'mlkube_serve_predictions_total{{label="setosa",version="{version}"}}') >= 2
    assert value(
        f'mlkube_serve_model_info{{alias="production",name="{registered_model.name}",'
        f'run_id="{client.get("/model").json()["run_id"]}",version="{version}"}}'
    ) == 1  # fmt: skip
    assert value("mlkube_serve_model_load_seconds") > 0


def test_openapi_describes_every_route(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/predict", "/invocations", "/model", "/metrics", "/healthz/live", "/healthz/ready",
            "/v2/models/{name}/infer"} <= set(spec["paths"])  # fmt: skip
    json.dumps(spec)  # serializable
