"""The data plane's verbs, without HTTP: readiness, which model is served, inference and its
count."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import numpy as np
import pytest

from service.dataplane import DataPlane
from service.errors import ModelNotFound, ModelNotLoaded
from service.loader import ModelStore
from service.metrics import Metrics
from service.runtime.batching import Predictor
from service.runtime.model import LoadedModel
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
