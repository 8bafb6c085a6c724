"""/invocations: the fast path takes only what MLflow answers identically, and answers the same
bytes as MLflow's own scoring code on the same model."""

from __future__ import annotations

import json
from typing import Any

import pytest

from service.api.mlflow import fast_features, is_plain_json
from service.errors import PayloadTooLarge
from service.runtime.model import LoadedModel
from service.runtime.scoring import invoke
from tests.unit.service.conftest import FEATURES

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]
RECORDS = [dict(zip(FEATURES, r, strict=True)) for r in ROWS]
COLUMNS = {name: [r[i] for r in ROWS] for i, name in enumerate(FEATURES)}
PERMUTED = ["petal_width", "sepal_length", "petal_length", "sepal_width"]

ACCEPTED = {
    "split": {"dataframe_split": {"columns": FEATURES, "data": ROWS}},
    "split-permuted": {"dataframe_split": {
        "columns": PERMUTED, "data": [[r[FEATURES.index(c)] for c in PERMUTED] for r in ROWS]}},
    "split-ints": {"dataframe_split": {"columns": FEATURES, "data": [[5, 3, 1, 0], [7, 3, 5, 2]]}},
    "records": {"dataframe_records": RECORDS},
    "instances-records": {"instances": RECORDS},
    "inputs-records": {"inputs": RECORDS},
    "instances-columns": {"instances": COLUMNS},
    "inputs-columns": {"inputs": COLUMNS},
}  # fmt: skip
DECLINED = {
    "lists (MLflow rejects these for a column schema)": {"inputs": ROWS},
    "split without columns": {"dataframe_split": {"data": ROWS}},
    "split with an index": {
        "dataframe_split": {"columns": FEATURES, "data": ROWS, "index": [0, 1, 2]}
    },
    "extra column (MLflow ignores it)": {"dataframe_records": [{**RECORDS[0], "x": 1}]},
    "missing column": {"dataframe_records": [{k: RECORDS[0][k] for k in FEATURES[:3]}]},
    "numeric string (MLflow converts it)": {
        "dataframe_split": {"columns": FEATURES, "data": [[5.1, "3.5", 1.4, 0.2]]}
    },
    "boolean (MLflow converts it)": {
        "dataframe_split": {"columns": FEATURES, "data": [[5.1, True, 1.4, 0.2]]}
    },
    "null": {"dataframe_split": {"columns": FEATURES, "data": [[5.1, None, 1.4, 0.2]]}},
    "params": {"inputs": RECORDS, "params": {"a": 1}},
    "two formats": {"inputs": RECORDS, "instances": RECORDS},
    "no format": {"foo": 1},
    "a list": [1, 2],
    "empty records": {"dataframe_records": []},
    "scalar columns": {"inputs": dict.fromkeys(FEATURES, 1.0)},
}


def mlflow_answer(body: bytes, content_type: str, model: LoadedModel) -> tuple[int, str]:
    answer = invoke(body, content_type, model)
    content = answer.content
    return answer.status, content.decode() if isinstance(content, bytes) else content


@pytest.mark.parametrize("name", ACCEPTED)
def test_fast_path_answers_exactly_like_mlflow(name: str, iris_model: LoadedModel) -> None:
    body = json.dumps(ACCEPTED[name]).encode()
    X = fast_features(body, "application/json", iris_model.schema, max_rows=100)
    assert X is not None
    labels, _ = iris_model.predict(X, want_proba=False)
    assert mlflow_answer(body, "application/json", iris_model) == (
        200,
        iris_model.predictions_json(labels).decode(),
    )


@pytest.mark.parametrize("name", DECLINED)
def test_anything_else_is_left_to_mlflow(name: str, iris_model: LoadedModel) -> None:
    body = json.dumps(DECLINED[name]).encode()
    assert fast_features(body, "application/json", iris_model.schema, max_rows=100) is None


@pytest.mark.parametrize(
    "body", [b"", b"{", b'{"inputs": [[NaN, 1, 2, 3]]}', b"\xff\xfe", b'{"inputs": [1e999]}']
)
def test_unparseable_json_is_left_to_mlflow(body: bytes, iris_model: LoadedModel) -> None:
    assert fast_features(body, "application/json", iris_model.schema, max_rows=100) is None
    status, content = mlflow_answer(body, "application/json", iris_model)
    assert status == 400
    assert json.loads(content)["error_code"] in {"BAD_REQUEST", "INVALID_PARAMETER_VALUE"}


def test_fast_path_enforces_the_row_limit(iris_model: LoadedModel) -> None:
    body = json.dumps({"dataframe_records": RECORDS * 4}).encode()
    with pytest.raises(PayloadTooLarge, match="SERVE_MAX_ROWS"):
        fast_features(body, "application/json", iris_model.schema, max_rows=10)


@pytest.mark.parametrize(
    ("content_type", "plain"),
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("application/json;charset=UTF-8", True),
        ("application/json; charset=latin-1", False),
        ("application/json; format=pandas-split", False),
        ("Application/JSON", False),
        ("text/csv", False),
        (None, False),
    ],
)
def test_is_plain_json(content_type: str | None, plain: bool) -> None:
    assert is_plain_json(content_type) is plain


def test_other_content_types_get_mlflows_answers(iris_model: LoadedModel) -> None:
    csv = b"sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n"
    assert mlflow_answer(csv, "text/csv", iris_model) == (200, '{"predictions": ["setosa"]}')
    status, content = mlflow_answer(b"{}", "text/plain", iris_model)
    assert status == 415
    assert "Got 'text/plain'" in content
    status, content = mlflow_answer(b"{}", None, iris_model)  # type: ignore[arg-type]
    assert status == 415  # MLflow itself crashes with a 500 here
    assert "Got 'None'" in content


def test_predictions_json_uses_mlflows_separators(iris_model: LoadedModel) -> None:
    import numpy as np

    labels: Any = np.array(["setosa", "virginica", "setosa"], dtype=object)
    expected = b'{"predictions": ["setosa", "virginica", "setosa"]}'
    assert iris_model.predictions_json(labels) == expected  # from precomputed label strings
    odd: Any = np.array(["setosa", "caf\u00e9"], dtype=object)  # not a class: plain json.dumps
    assert iris_model.predictions_json(odd) == b'{"predictions": ["setosa", "caf\\u00e9"]}'
    assert iris_model.predictions_json(np.array([1.5, 2.0])) == b'{"predictions": [1.5, 2.0]}'
