"""Data loading, validation and splitting."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jobs.data import (
    IRIS_FEATURES,
    DataError,
    bootstrap,
    holdout_split,
    load_dataset,
    load_iris_frame,
)


@pytest.fixture
def iris_csv(tmp_path: Path) -> Path:
    path = tmp_path / "iris.csv"
    load_iris_frame().to_csv(path, index=False)
    return path


def test_iris_by_default() -> None:
    ds = load_dataset(None, None)
    assert ds.features == IRIS_FEATURES
    assert set(ds.y) == {"setosa", "versicolor", "virginica"}
    assert len(ds.frame) == 150


def test_csv_and_parquet_load_the_same(iris_csv: Path, tmp_path: Path) -> None:
    parquet = tmp_path / "iris.parquet"
    pd.read_csv(iris_csv).to_parquet(parquet)
    a = load_dataset(str(iris_csv), "species")
    b = load_dataset(str(parquet), "species")
    pd.testing.assert_frame_equal(a.frame, b.frame)


def test_holdout_is_fixed_and_stratified() -> None:
    ds = load_dataset(None, None)
    first, second = holdout_split(ds), holdout_split(ds)
    assert list(first.X_holdout.index) == list(second.X_holdout.index)
    assert first.y_holdout.value_counts().to_dict() == {
        "setosa": 10,
        "versicolor": 10,
        "virginica": 10,
    }
    assert not set(first.X_holdout.index) & set(first.X_train.index)


def test_bootstrap_differs_by_seed_and_keeps_every_class() -> None:
    split = holdout_split(load_dataset(None, None))
    X1, y1 = bootstrap(split.X_train, split.y_train, 20261121)
    X2, y2 = bootstrap(split.X_train, split.y_train, 20261122)
    X1b, _ = bootstrap(split.X_train, split.y_train, 20261121)
    assert len(X1) == len(split.X_train)
    assert list(X1.index) == list(X1b.index)  # reproducible
    assert list(X1.index) != list(X2.index)  # a different sample each day
    assert X1.index.duplicated().any()  # drawn with replacement
    assert set(y1) == set(y2) == set(split.y_train)


def write(tmp_path: Path, frame: pd.DataFrame, name: str = "d.csv") -> str:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return str(path)


@pytest.mark.parametrize(
    ("make", "target", "message"),
    [
        (lambda p: str(p / "nope.csv"), "y", "no such file"),
        (lambda p: write(p, load_iris_frame(), "d.txt"), "species", "unsupported file type"),
        (lambda p: write(p, load_iris_frame()), "label", "--target label: no such column"),
        (lambda p: write(p, load_iris_frame()), None, "--target is required"),
        (
            lambda p: write(p, load_iris_frame().assign(color="red")),
            "species",
            "non-numeric feature columns color",
        ),
        (
            lambda p: write(p, load_iris_frame().head(53)),  # 50 setosa, 3 versicolor
            "species",
            "too few rows per class",
        ),
        (
            lambda p: write(p, load_iris_frame().assign(sepal_length=np.nan)),
            "species",
            "missing values in sepal_length",
        ),
        (lambda p: write(p, load_iris_frame().iloc[:50]), "species", "at least 2 classes"),
    ],
)
def test_bad_data_names_the_problem(tmp_path: Path, make, target, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DataError, match=message):
        load_dataset(make(tmp_path), target)


def test_garbage_csv(tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    path.write_text("not parquet at all")
    with pytest.raises(DataError, match="cannot be read as parquet"):
        load_dataset(str(path), "species")
