"""The numpy fast path gives pyfunc's answers, without touching the loaded estimator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from service.errors import InvalidInput
from service.runtime.model import LoadedModel, _without_feature_names
from tests.unit.service.conftest import FEATURES, load_saved, save_iris

SAMPLE = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]])


def test_fast_path_matches_the_plain_pipeline(iris_model: LoadedModel, iris_reference: Any) -> None:
    assert iris_model.fast
    assert iris_model.classes == ["setosa", "versicolor", "virginica"]
    labels, proba = iris_model.predict(SAMPLE, want_proba=True)
    frame = pd.DataFrame(SAMPLE, columns=FEATURES)
    assert labels.tolist() == iris_reference.predict(frame).tolist()
    assert proba is not None
    np.testing.assert_allclose(proba, iris_reference.predict_proba(frame), rtol=0, atol=1e-12)
    assert iris_model.predict(SAMPLE, want_proba=False)[1] is None


def test_the_loaded_estimator_keeps_its_feature_names(iris_model: LoadedModel) -> None:
    raw = iris_model.raw
    assert list(raw.feature_names_in_) == FEATURES
    assert list(raw.steps[0][1].feature_names_in_) == FEATURES
    stripped = _without_feature_names(raw)
    assert not hasattr(stripped.steps[0][1], "feature_names_in_")
    assert stripped.steps[1][1].coef_ is raw.steps[1][1].coef_  # shallow: no copy of weights
    assert list(raw.steps[0][1].feature_names_in_) == FEATURES


def test_no_fast_path_when_fitted_in_another_column_order(tmp_path: Path) -> None:
    """MLflow hands pyfunc the signature's order; a model fitted in another order is served
    through pyfunc (which then answers exactly what MLflow would)."""
    fit_order = ["petal_width", "petal_length", "sepal_width", "sepal_length"]
    model = load_saved(save_iris(tmp_path / "m", fit_columns=fit_order))
    assert model.schema is not None
    assert list(model.schema.names) == FEATURES
    assert not model.fast


def test_a_frame_goes_through_pyfunc(iris_model: LoadedModel) -> None:
    labels, proba = iris_model.predict(pd.DataFrame(SAMPLE, columns=FEATURES), want_proba=True)
    assert labels.tolist() == iris_model.predict(SAMPLE, want_proba=False)[0].tolist()
    assert proba is not None
    assert proba.shape == (3, 3)


def test_a_model_error_is_the_inputs_fault(iris_model: LoadedModel) -> None:
    with pytest.raises(InvalidInput, match="could not predict"):
        iris_model.predict(np.ones((1, 3)), want_proba=False)
