"""The data plane's verbs, without HTTP: readiness, which model is served, inference and
MLflow's scoring, each counting what it predicted; and the dialects call only those verbs, never
the plane's wiring."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import service.api
from service.dataplane import DataPlane
from service.errors import ModelNotFound, ModelNotLoaded
from service.loader import ModelStore
from service.metrics import Metrics
from service.runtime.batching import Predictor
from service.runtime.model import LoadedModel
from service.runtime.scoring import Invocation, invoke
from service.settings import Settings

ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.0, 3.4, 1.5, 0.2]])


@pytest.fixture
def plane() -> Iterator[DataPlane]:
    settings = Settings(MODEL_NAME="iris", SERVE_MAX_ROWS=7)
    with ThreadPoolExecutor(max_workers=1) as executor:
        yield DataPlane(settings, ModelStore(), Metrics(), Predictor(executor), datetime.now(UTC))


@pytest.fixture
def loaded(plane: DataPlane, iris_model: LoadedModel) -> DataPlane:
    plane.store.swap(iris_model)  # version "1"
    return plane


def predicted(plane: DataPlane, label: str) -> float | None:
    return plane.metrics.registry.get_sample_value(
        "mlkube_serve_predictions_total", {"version": "1", "label": label}
    )


def test_before_the_first_load(plane: DataPlane) -> None:
    plane.store.attempts, plane.store.last_error = 2, "URLError: refused"
    assert plane.ready() is False
    state = plane.readiness()
    assert state.model is None
    assert (state.target, state.attempts, state.last_error) == (
        "models:/iris@production", 2, "URLError: refused",
    )  # fmt: skip
    assert plane.model_ready("iris") is False
    assert plane.model_ready("iris", "9") is False  # the version is known only once loaded
    with pytest.raises(ModelNotFound, match="'other' is not served here"):
        plane.model_ready("other")
    with pytest.raises(ModelNotLoaded, match="not loaded yet: URLError: refused"):
        plane.model_info()
    with pytest.raises(ModelNotFound):  # another name is a 404 even before the load
        plane.model_info("other")
    with pytest.raises(ModelNotLoaded):
        plane.model_info("iris")


def test_once_loaded(loaded: DataPlane, iris_model: LoadedModel) -> None:
    assert loaded.ready() is True
    assert loaded.readiness().model is iris_model
    assert loaded.model_ready("iris") is True
    assert loaded.model_ready("iris", "1") is True
    with pytest.raises(
        ModelNotFound, match=r"version '2' of 'iris' is not served here \(serving v1"
    ):
        loaded.model_ready("iris", "2")
    assert loaded.model_info() is iris_model
    assert loaded.model_info("iris") is iris_model
    assert loaded.model_info("iris", "1") is iris_model
    with pytest.raises(ModelNotFound, match="version '2'"):
        loaded.model_info("iris", "2")
    with pytest.raises(ModelNotFound, match="this server serves 'iris'"):
        loaded.model_info("other", "1")


def test_max_rows_is_the_setting(plane: DataPlane) -> None:
    assert plane.max_rows == 7


async def test_infer_predicts_and_counts_each_label(
    loaded: DataPlane, iris_model: LoadedModel
) -> None:
    result = await loaded.infer(iris_model, ROWS, want_proba=True)
    assert result.model is iris_model
    assert result.labels.tolist() == ["setosa", "virginica", "setosa"]
    assert result.proba is not None
    assert result.proba.shape == (3, 3)
    assert predicted(loaded, "setosa") == 2
    assert predicted(loaded, "virginica") == 1
    text = loaded.metrics_text().decode()
    assert 'mlkube_serve_predictions_total{label="setosa",version="1"} 2.0' in text


CSV = (b"sepal_length,sepal_width,petal_length,petal_width\n"
       b"5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n5.0,3.4,1.5,0.2\n")  # fmt: skip


async def test_invoke_answers_as_mlflow_and_counts_the_prediction(
    loaded: DataPlane, iris_model: LoadedModel
) -> None:
    answer = await loaded.invoke(iris_model, CSV, "text/csv")
    assert (answer.status, answer.media_type) == (200, "application/json")
    assert answer.content == '{"predictions": ["setosa", "virginica", "setosa"]}'
    assert answer.prediction.tolist() == ["setosa", "virginica", "setosa"]
    assert predicted(loaded, "setosa") == 2
    assert predicted(loaded, "virginica") == 1


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [(b"a,b\n1,2\n", "text/csv", 400), (b"{}", "text/plain", 415), (b"{}", None, 415)],
)
async def test_invoke_counts_nothing_without_a_prediction(
    loaded: DataPlane, iris_model: LoadedModel, body: bytes, content_type: str | None, status: int
) -> None:
    answer = await loaded.invoke(iris_model, body, content_type)
    assert answer.status == status
    assert answer.prediction is None
    assert "mlkube_serve_predictions_total{" not in loaded.metrics_text().decode()


@pytest.mark.parametrize(
    ("prediction", "labels"),
    [
        (np.array(["a", "b", "a"]), ["a", "b", "a"]),
        (np.array([1, 0]), [1, 0]),
        ([np.float64(1.5), "x"], [1.5, "x"]),
        ((True,), [True]),
        (np.array([[1, 2], [3, 4]]), [[1, 2], [3, 4]]),
    ],
)
def test_a_list_of_values_is_counted(prediction: Any, labels: list[Any]) -> None:
    """What MLflow answers as ``{"predictions": [value, ...]}``."""
    counted = Invocation(200, "", "application/json", prediction).labels()
    assert counted is not None
    assert counted.dtype == object
    assert counted.tolist() == labels
    if counted.ndim == 1:  # the metric's label values
        assert [str(v) for v in counted] == [str(v) for v in labels]


@pytest.mark.parametrize(
    "prediction",
    [
        None,
        np.array([]),
        [],
        [{"a": 1}],
        pd.DataFrame({"a": [1, 2]}),
        pd.Series(["a", "b"]),  # MLflow answers a Series as records too
        {"a": [1, 2]},
        "a",
    ],
    ids=repr,
)
def test_records_tables_and_mappings_are_not_counted(prediction: Any) -> None:
    assert Invocation(200, "", "application/json", prediction).labels() is None


@pytest.mark.parametrize(
    "body",
    [
        CSV,
        b'{"dataframe_split": {"columns": ["sepal_length", "sepal_width", "petal_length", '
        b'"petal_width"], "data": [[5.1, null, 1.4, 0.2]]}}',  # an error with MLflow's traceback
        b'{"inputs": [[5.1, 3.5, 1.4, 0.2]]}',
    ],
    ids=["csv", "null", "lists"],
)
def test_invoke_answers_what_mlflow_answers_on_the_model(
    iris_model: LoadedModel, body: bytes
) -> None:
    """Keeping the prediction changes nothing in MLflow's answer, stack traces included."""
    from mlflow.exceptions import MlflowException
    from mlflow.pyfunc import scoring_server

    content_type = "text/csv" if body is CSV else "application/json"
    ours = invoke(body, content_type, iris_model)
    try:
        theirs: Any = scoring_server.invocations(  # type: ignore[no-untyped-call]
            body, content_type, iris_model.pyfunc, iris_model.input_schema
        )
        expected = (theirs.status, theirs.response)
    except MlflowException as exc:
        expected = (exc.get_http_status_code(), exc.serialize_as_json())
    assert (ours.status, ours.content) == expected


PLANE_FIELDS = {f.name for f in fields(DataPlane)}


def reaches(path: Path) -> list[str]:
    """``dataplane.<field>`` or ``plane(request).<field>`` in a dialect module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Attribute) or node.attr not in PLANE_FIELDS:
            continue
        owner = node.value
        if (isinstance(owner, ast.Name) and owner.id == "dataplane") or (
            isinstance(owner, ast.Call)
            and isinstance(owner.func, ast.Name)
            and owner.func.id == "plane"
        ):
            found.append(f"{path.name}:{node.lineno} .{node.attr}")
    return found


@pytest.mark.parametrize("path", sorted(Path(service.api.__file__).parent.glob("*.py")),
                         ids=lambda p: p.name)  # fmt: skip
def test_the_dialects_call_verbs_never_the_planes_wiring(path: Path) -> None:
    assert reaches(path) == []
