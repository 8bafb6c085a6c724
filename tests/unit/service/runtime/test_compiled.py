"""Compiled forms serve only when they answer as scikit-learn does; anything else is refused,
with the reason in ``serving_reason`` (what ``GET /model`` shows)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlkube.core.check_rows import check_metadata, read_check_metadata
from service.runtime.compiled import TreePipeline, compile_model
from service.runtime.model import LoadedModel
from tests.unit.service.conftest import FEATURES, load_saved


def iris(binary: bool = False) -> tuple[pd.DataFrame, Any]:
    from sklearn.datasets import load_iris

    data = load_iris(as_frame=True)
    X = data.data.set_axis(FEATURES, axis=1)
    y = data.target.map(dict(enumerate(data.target_names)))
    return X, (y == "versicolor") if binary else y


def pipeline(kind: str, binary: bool = False, scaler: str = "standard") -> Any:
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        GradientBoostingClassifier,
        HistGradientBoostingClassifier,
        RandomForestClassifier,
    )
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, StandardScaler

    classifiers: dict[str, Any] = {
        "lr": LogisticRegression(max_iter=1000),
        "rf": RandomForestClassifier(n_estimators=30, random_state=1),
        "et": ExtraTreesClassifier(n_estimators=30, random_state=1),
        "gb": GradientBoostingClassifier(n_estimators=30, random_state=1),
        "hgb": HistGradientBoostingClassifier(max_iter=30, random_state=1),
    }
    scalers = {"standard": StandardScaler(), "minmax": MinMaxScaler(), "maxabs": MaxAbsScaler()}
    X, y = iris(binary)
    return Pipeline([("scale", scalers[scaler]), ("classify", classifiers[kind])]).fit(X, y)


def save(path: Path, model: Any, *, metadata: dict[str, Any] | None = None) -> LoadedModel:
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from skops.io import dumps, get_untrusted_types

    X, _ = iris()
    mlflow.sklearn.save_model(
        model, str(path), signature=infer_signature(X.head(3), model.predict(X.head(3))),
        pip_requirements=["scikit-learn"], metadata=metadata,
        skops_trusted_types=list(get_untrusted_types(data=dumps(model))) or None,
    )  # fmt: skip
    return load_saved(path)


def far_and_near_rows(seed: int = 3) -> np.ndarray[Any, Any]:
    """Random rows over Iris's range, and rows at Iris-like values (one decimal: the trees'
    thresholds sit halfway between them)."""
    rng = np.random.default_rng(seed)
    spread = rng.uniform(0.0, 8.0, size=(500, 4))
    return np.vstack([spread, np.round(spread, 1), np.round(spread, 1) + 0.05])


@pytest.mark.parametrize("binary", [False, True], ids=["3 classes", "2 classes"])
@pytest.mark.parametrize(
    ("kind", "scaler", "path"),
    [("lr", "minmax", "numpy-linear"), ("rf", "standard", "treelite"),
     ("et", "maxabs", "treelite"), ("gb", "standard", "treelite"),
     ("hgb", "minmax", "treelite")],
)  # fmt: skip
def test_each_family_is_compiled_and_answers_as_scikit_learn(
    tmp_path: Path, kind: str, scaler: str, path: str, binary: bool
) -> None:
    reference = pipeline(kind, binary, scaler)
    model = save(tmp_path / "m", reference)
    assert model.serving_path == path, model.serving_reason
    assert "same labels as scikit-learn" in model.serving_reason
    rows = far_and_near_rows()
    labels, proba = model.predict(rows, want_proba=True)
    frame = pd.DataFrame(rows, columns=FEATURES)
    assert labels.tolist() == reference.predict(frame).tolist()
    assert proba is not None
    np.testing.assert_allclose(proba, reference.predict_proba(frame), rtol=0, atol=1e-12)


def test_the_training_jobs_holdout_rows_are_checked(tmp_path: Path) -> None:
    X, _ = iris()
    stored = check_metadata(X.iloc[::5].to_numpy().tolist(), X.min().tolist(), X.max().tolist())
    model = save(tmp_path / "m", pipeline("rf"), metadata=stored)
    assert model.serving_path == "treelite"
    assert "30 holdout" in model.serving_reason
    assert read_check_metadata(stored, 4) is not None
    assert read_check_metadata(stored, 5) is None  # another model's rows: not used
    assert read_check_metadata({"mlkube_check": {"min": "x"}}, 4) is None


def test_a_compiled_form_wrong_only_at_the_thresholds_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A converter that compares the features in float64 where scikit-learn's trees compare
    float32 agrees with scikit-learn almost everywhere: only rows at a split threshold tell
    them apart. The check finds them, refuses the compiled form, and scikit-learn serves (so
    the answer at such a row is scikit-learn's). Without the check, the compiled form would
    serve and this test would fail."""

    def float64_input(self: TreePipeline, X: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        return np.ascontiguousarray(self._pre(X))

    monkeypatch.setattr(TreePipeline, "_input", float64_input)
    reference = pipeline("rf")
    model = save(tmp_path / "m", reference)
    assert model.serving_path == "sklearn-numpy"
    assert model.serving_reason.startswith("compiled form refused: treelite")
    assert "scikit-learn serves it" in model.serving_reason
    # A row the float64 comparison gets wrong (found by the check's threshold rows) is answered
    # as scikit-learn answers it.
    compiled, _ = compile_model(reference)
    assert compiled is not None
    rows = far_and_near_rows()
    frame = pd.DataFrame(rows, columns=FEATURES)
    proba = reference.predict_proba(frame)
    differs = np.abs(compiled.predict_proba(rows) - proba).max(axis=1) > 1e-12
    assert differs.any()  # the broken form is wrong somewhere a user would see
    served = model.predict(rows[differs], want_proba=True)[1]
    np.testing.assert_allclose(served, proba[differs], rtol=0, atol=1e-12)


def test_probabilities_off_by_more_than_the_tolerance_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = TreePipeline.predict_proba

    def nudged(self: TreePipeline, X: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        proba: np.ndarray[Any, Any] = original(self, X) + 1e-9
        return proba

    monkeypatch.setattr(TreePipeline, "predict_proba", nudged)
    model = save(tmp_path / "m", pipeline("gb"))
    assert model.serving_path == "sklearn-numpy"
    assert "probabilities differ from scikit-learn's by more than 1e-12" in model.serving_reason


def test_a_model_without_a_compiled_form_is_served_by_scikit_learn(tmp_path: Path) -> None:
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = iris()
    knn = Pipeline([("scale", StandardScaler()), ("knn", KNeighborsClassifier())]).fit(X, y)
    model = save(tmp_path / "m", knn)
    assert model.serving_path == "sklearn-numpy"
    assert model.serving_reason == (
        "no compiled form of KNeighborsClassifier: scikit-learn serves it"
    )
