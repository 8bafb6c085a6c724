"""The API page describes what each route accepts: a body the route answers 200 is valid under
the published schema, and a body the schema rejects is answered with a 4xx, never a 200.

The parsers are hand-written for speed (see ``service.api.endpoints``); these pairs keep them and
the declared request models from drifting apart."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator

from mlkube.core.processes import free_port
from service.app import create_app
from service.runtime.model import LoadedModel
from service.settings import Settings
from tests.unit.service.conftest import FEATURES

ROW = [5.1, 3.5, 1.4, 0.2]
RECORD = dict(zip(FEATURES, ROW, strict=True))
COLUMNS = {name: [value] for name, value in RECORD.items()}
TENSOR = {"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": ROW}
INFER = "/v2/models/{name}/infer"
PARQUET = {"content-type": "application/vnd.apache.parquet"}

# Bodies each route answers 200 (for the Iris model).
ACCEPTED: dict[str, list[Any]] = {
    "/predict": [
        {"instances": [ROW]},
        {"instances": [RECORD, ROW]},
        [ROW],
    ],
    "/invocations": [
        {"dataframe_split": {"columns": FEATURES, "data": [ROW]}},
        {"dataframe_split": {"columns": FEATURES, "data": [ROW, ROW], "index": [7, 8]}},
        {"dataframe_split": {"columns": FEATURES, "data": [ROW]}, "params": {}},
        {"dataframe_records": [RECORD]},
        {"dataframe_records": [RECORD], "params": {}},
        {"instances": [RECORD]},
        {"instances": COLUMNS},
        {"inputs": [RECORD]},
        {"inputs": COLUMNS, "params": {}},
    ],
    INFER: [
        {"inputs": [TENSOR]},
        {"id": "1", "inputs": [{**TENSOR, "data": [ROW]}], "outputs": [{"name": "predict"}]},
        {"inputs": [{"name": n, "shape": [1], "datatype": "FP64", "data": [v]}
                    for n, v in RECORD.items()], "outputs": [{"name": "predict_proba"}]},
    ],
}  # fmt: skip

# Bodies the schema rejects; the route must not answer them 200.
REJECTED: dict[str, list[Any]] = {
    "/predict": [
        {},
        {"instances": []},
        {"instances": [ROW], "extra": 1},
        {"rows": [ROW]},
        [],
    ],
    "/invocations": [
        {},
        {"dataframe_split": {"columns": FEATURES, "data": [ROW]}, "instances": [RECORD]},
        {"dataframe_records": []},
        {"records": [RECORD]},
        {"dataframe_split": {"columns": FEATURES}},
    ],
    INFER: [
        {},
        {"inputs": []},
        {"inputs": [TENSOR], "unknown": 1},
        {"inputs": [{**TENSOR, "datatype": "FP128"}]},
        {"inputs": [{**TENSOR, "shape": [-1, 4]}]},
        {"inputs": [TENSOR], "outputs": [{"name": "predict_log_proba"}]},
        {"inputs": [TENSOR], "id": 42},
    ],
}


@pytest.fixture(scope="module")
def served(iris_model: LoadedModel) -> Iterator[TestClient]:
    app = create_app(Settings(MLFLOW_TRACKING_URI=f"http://127.0.0.1:{free_port()}",
                              MODEL_NAME="iris"))  # fmt: skip
    with TestClient(app) as client:
        app.state.dataplane.store.swap(iris_model)
        yield client


@pytest.fixture(scope="module")
def spec(served: TestClient) -> dict[str, Any]:
    document: dict[str, Any] = served.get("/openapi.json").json()
    return document


def body_schema(spec: dict[str, Any], path: str, media: str = "application/json") -> Any:
    content = spec["paths"][path]["post"]["requestBody"]["content"]
    # The $refs point into the document's components: validate with them at the root.
    return Draft202012Validator({**content[media]["schema"], "components": spec["components"]})


def cases(table: dict[str, list[Any]]) -> list[Any]:
    return [pytest.param(path, body, id=f"{path}-{i}") for path, bodies in table.items()
            for i, body in enumerate(bodies)]  # fmt: skip


@pytest.mark.parametrize(("path", "body"), cases(ACCEPTED))
def test_what_a_route_answers_is_in_its_schema(
    served: TestClient, spec: dict[str, Any], path: str, body: Any
) -> None:
    response = served.post(path.format(name="iris"), json=body)
    assert response.status_code == 200, response.text
    errors = [e.message for e in body_schema(spec, path).iter_errors(body)]
    assert not errors, f"{path} answers this body, but its documented schema rejects it: {errors}"


@pytest.mark.parametrize(("path", "body"), cases(REJECTED))
def test_what_the_schema_rejects_is_a_4xx(
    served: TestClient, spec: dict[str, Any], path: str, body: Any
) -> None:
    assert not body_schema(spec, path).is_valid(body), "the case is not a schema violation"
    response = served.post(path.format(name="iris"), json=body)
    assert 400 <= response.status_code < 500, response.text


def test_invocations_documents_every_media_type_it_takes(
    served: TestClient, spec: dict[str, Any]
) -> None:
    """CSV, and parquet when pyarrow is installed: the page lists exactly what is answered."""
    import pandas as pd

    from service.api import mlflow

    content = spec["paths"]["/invocations"]["post"]["requestBody"]["content"]
    csv = "sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n"
    assert "text/csv" in content
    assert served.post("/invocations", content=csv, headers={"content-type": "text/csv"}).json() \
        == {"predictions": ["setosa"]}  # fmt: skip
    parquet = io.BytesIO()
    pd.DataFrame([RECORD]).to_parquet(parquet)
    answer = served.post("/invocations", content=parquet.getvalue(),
                         headers=PARQUET)  # fmt: skip
    assert mlflow.PARQUET, "the dev environment has pyarrow: parquet is answered and documented"
    assert answer.json() == {"predictions": ["setosa"]}, answer.text
    assert "application/vnd.apache.parquet" in content


def test_without_pyarrow_parquet_is_a_415_naming_it(
    served: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The serve image has no pyarrow (130 MB): parquet gets a plain 415, not a parser crash."""
    monkeypatch.setattr("service.api.mlflow.PARQUET", False)
    answer = served.post("/invocations", content=b"PAR1...",
                         headers=PARQUET)  # fmt: skip
    assert answer.status_code == 415
    assert "pyarrow" in answer.json()["message"]


def test_parquet_rows_count_against_the_row_limit(iris_model: LoadedModel) -> None:
    import pandas as pd

    app = create_app(Settings(MLFLOW_TRACKING_URI=f"http://127.0.0.1:{free_port()}",
                              MODEL_NAME="iris", SERVE_MAX_ROWS=3))  # fmt: skip
    with TestClient(app) as client:
        app.state.dataplane.store.swap(iris_model)
        parquet = io.BytesIO()
        pd.DataFrame([RECORD] * 4).to_parquet(parquet)
        answer = client.post("/invocations", content=parquet.getvalue(),
                             headers=PARQUET)  # fmt: skip
    assert answer.status_code == 413
    assert "SERVE_MAX_ROWS" in answer.json()["message"]


def test_every_operation_is_declared_once(spec: dict[str, Any]) -> None:
    """One declaration per route: each path and method appears once, with a unique id."""
    ids = [op["operationId"] for ops in spec["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    assert spec["paths"]["/v2/models/{name}/versions/{version}/infer"]["post"]["parameters"] == [
        {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
        for n in ("name", "version")
    ]
