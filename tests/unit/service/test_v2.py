"""Open Inference Protocol v2 request parsing and answers."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from service.api.v2 import infer_response, model_metadata, parse_infer_request
from service.errors import InvalidInput, PayloadTooLarge
from service.runtime.model import LoadedModel
from tests.unit.service.conftest import FEATURES

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


def parse(payload: Any, model: LoadedModel, max_rows: int = 100) -> Any:
    assert model.schema is not None
    return parse_infer_request(payload, model, model.schema, max_rows)


def tensor(data: Any, shape: list[int], name: str = "input-0", datatype: str = "FP64") -> Any:
    return {"name": name, "shape": shape, "datatype": datatype, "data": data}


@pytest.mark.parametrize(
    "inputs",
    [
        [tensor([v for r in ROWS for v in r], [2, 4])],  # flat, row-major
        [tensor(ROWS, [2, 4])],  # nested
        [tensor([[5.1, 3.5, 1.4, 0.2], [6.7, 3, 5.2, 2.3]], [2, 4], datatype="FP32")],
        [tensor([r[i] for r in ROWS], [2], name=n) for i, n in enumerate(FEATURES)],
        [tensor([[r[i]] for r in ROWS], [2, 1], name=n) for i, n in enumerate(FEATURES)][::-1],
    ],
)
def test_matrix_and_per_feature_tensors(inputs: Any, iris_model: LoadedModel) -> None:
    request = parse({"id": "r1", "inputs": inputs}, iris_model)
    np.testing.assert_array_equal(request.features, np.array(ROWS))
    assert request.id == "r1"
    assert request.outputs == ("predict",)


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ([], "JSON object"),
        ({"inputs": []}, "non-empty list"),
        ({"inputs": [tensor([r[:3] for r in ROWS], [2, 3])]}, "shape must be [N, 4]"),
        ({"inputs": [tensor(ROWS, [3, 4])]}, "has 8 values but shape [3, 4] needs 12"),
        ({"inputs": [tensor(ROWS, [2, 4], datatype="BYTES")]}, "does not fit"),
        ({"inputs": [tensor(ROWS, [2, 4], datatype="FP128")]}, "datatype must be one of"),
        ({"inputs": [tensor([[1.5, 2, 3, 4]], [1, 4], datatype="INT64")]}, "non-integers"),
        ({"inputs": [tensor([[[1, 2, 3, 4]]], [1, 4])]}, "nested deeper than its shape"),
        ({"inputs": [tensor([[1, "2", 3, 4]], [1, 4])]}, "must be a number"),
        ({"inputs": [tensor(ROWS, [2, 4])], "outputs": [{"name": "nope"}]}, "outputs[0].name"),
        ({"inputs": [tensor(ROWS, [2, 4])], "colour": 1}, "unknown field 'colour'"),
        ({"inputs": [tensor([1.0], [1], name=n) for n in FEATURES[:3]]}, "one tensor per feature"),
        ({"inputs": [tensor([[1, 2, 3, 4]], [1, 4], name=n) for n in FEATURES]}, "[N] or [N, 1]"),
        ({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64"}]}, "data must be a list"),
        ({"inputs": [tensor(ROWS, [-2, 4])]}, "non-negative integers"),
        ({"inputs": [tensor([], [0, 4])]}, "empty"),
    ],
)
def test_bad_requests_say_what_is_wrong(payload: Any, words: str, iris_model: LoadedModel) -> None:
    with pytest.raises(InvalidInput) as err:
        parse(payload, iris_model)
    assert words in err.value.message


def test_row_limit(iris_model: LoadedModel) -> None:
    with pytest.raises(PayloadTooLarge, match="SERVE_MAX_ROWS"):
        parse({"inputs": [tensor(ROWS * 3, [6, 4])]}, iris_model, max_rows=5)


def test_answer_carries_labels_probabilities_and_the_version(iris_model: LoadedModel) -> None:
    request = parse(
        {"id": "7", "inputs": [tensor(ROWS, [2, 4])],
         "outputs": [{"name": "predict"}, {"name": "predict_proba"}]},
        iris_model,
    )  # fmt: skip
    labels, proba = iris_model.predict(request.features, want_proba=True)
    body = infer_response(request, iris_model, labels, proba)
    assert body["model_name"] == "iris"
    assert body["model_version"] == "1"
    assert body["id"] == "7"
    predict, probabilities = body["outputs"]
    assert predict == {"name": "predict", "datatype": "BYTES", "shape": [2],
                       "data": ["setosa", "virginica"]}  # fmt: skip
    assert probabilities["shape"] == [2, 3]
    assert probabilities["datatype"] == "FP64"
    assert len(probabilities["data"]) == 6
    assert sum(probabilities["data"][:3]) == pytest.approx(1.0)


def test_metadata_lists_inputs_and_outputs(iris_model: LoadedModel) -> None:
    meta = model_metadata(iris_model, iris_model.schema)
    assert meta["name"] == "iris"
    assert meta["versions"] == ["1"]
    assert meta["platform"] == "mlflow_sklearn"
    assert [i["name"] for i in meta["inputs"]] == FEATURES
    assert {i["datatype"] for i in meta["inputs"]} == {"FP64"}
    assert meta["outputs"] == [
        {"name": "predict", "datatype": "BYTES", "shape": [-1]},
        {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 3]},
    ]
