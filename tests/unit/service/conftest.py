"""A real Iris pipeline saved as an MLflow model on disk (no server needed), loaded once."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from service.runtime.model import LoadedModel, ModelInfo

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def iris_pipeline(columns: list[str] | None = None) -> tuple[Any, Any]:
    """(fitted pipeline, training frame) with the contract's column names."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    iris = load_iris(as_frame=True)
    X = iris.data.set_axis(FEATURES, axis=1)
    if columns is not None:
        X = X[columns]
    y = iris.target.map(dict(enumerate(iris.target_names)))
    model = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=500))])
    return model.fit(X, y), X


def load_saved(path: Path, version: str = "1") -> LoadedModel:
    import mlflow.pyfunc

    pyfunc = mlflow.pyfunc.load_model(str(path))
    info = ModelInfo(
        name="iris", version=version, alias="production", run_id=None, source=str(path),
        loaded_at=datetime.now(UTC), load_seconds=0.0,
        flavors=tuple(sorted(pyfunc.metadata.flavors)), signature=None,
    )  # fmt: skip
    return LoadedModel(info, pyfunc)


def save_iris(path: Path, *, signature_columns: list[str] | None = None,
              fit_columns: list[str] | None = None) -> Path:  # fmt: skip
    """Save the pipeline fitted on ``fit_columns`` with a signature listing
    ``signature_columns`` (both default to the contract's order)."""
    import mlflow.sklearn
    from mlflow.models import infer_signature

    model, X = iris_pipeline(fit_columns)
    example = X.head(3)[signature_columns or FEATURES]
    mlflow.sklearn.save_model(
        model,
        str(path),
        signature=infer_signature(example, model.predict(X.head(3))),
        pip_requirements=["scikit-learn"],  # no requirement inference: it costs ~30 s
    )
    return path


@pytest.fixture(scope="session")
def iris_model(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    return load_saved(save_iris(tmp_path_factory.mktemp("models") / "iris"))


@pytest.fixture(scope="session")
def iris_reference() -> Any:
    """The plain scikit-learn pipeline, fitted the same way, to compare predictions against."""
    return iris_pipeline()[0]
