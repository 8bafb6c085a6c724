"""Loading and splitting the training data, with errors a user can act on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_numeric_dtype
from sklearn.model_selection import train_test_split
from sklearn.utils import resample

IRIS_SOURCE = "sklearn.datasets.load_iris"
IRIS_TARGET = "species"
IRIS_FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
# The holdout must be the same rows for every run, so champion and challenger are compared
# on identical data: its seed never changes.
HOLDOUT_SEED = 42
HOLDOUT_FRACTION = 0.2
MIN_ROWS_PER_CLASS = 5


class DataError(ValueError):
    """The data cannot be trained on; the message says why and what to change."""


@dataclass(frozen=True)
class Dataset:
    frame: pd.DataFrame  # features + target
    target: str
    source: str
    name: str

    @property
    def features(self) -> list[str]:
        return [c for c in self.frame.columns if c != self.target]

    @property
    def X(self) -> pd.DataFrame:  # noqa: N802 - the ML convention
        return self.frame[self.features]

    @property
    def y(self) -> pd.Series:
        return self.frame[self.target]


@dataclass(frozen=True)
class Split:
    X_train: pd.DataFrame
    y_train: pd.Series
    X_holdout: pd.DataFrame
    y_holdout: pd.Series


def load_iris_frame() -> pd.DataFrame:
    from sklearn.datasets import load_iris

    bunch = load_iris(as_frame=True)
    frame: pd.DataFrame = bunch.data.copy()
    frame.columns = IRIS_FEATURES
    frame[IRIS_TARGET] = pd.Categorical.from_codes(bunch.target, bunch.target_names).astype(str)
    return frame


def _read(source: str) -> pd.DataFrame:
    suffix = Path(source.split("?", 1)[0]).suffix.lower()
    is_url = "://" in source
    if not is_url and not Path(source).is_file():
        raise DataError(f"--data {source}: no such file")
    try:
        if suffix == ".csv":
            return pd.read_csv(source)
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(source)
    except ImportError as exc:  # e.g. s3:// or gs:// CSV without fsspec/s3fs installed
        raise DataError(f"--data {source}: reading it needs a package: {exc}") from exc
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"--data {source}: cannot be read as {suffix[1:]}: {exc}") from exc
    raise DataError(
        f"--data {source}: unsupported file type {suffix or '(none)'}; use .csv or .parquet"
    )


def load_dataset(data: str | None, target: str | None) -> Dataset:
    """Iris when ``data`` is None, else a CSV/Parquet file or URL with ``target`` as label."""
    if data is None:
        if target not in (None, IRIS_TARGET):
            raise DataError(f"--target {target}: the built-in Iris data's label is '{IRIS_TARGET}'")
        return validate(Dataset(load_iris_frame(), IRIS_TARGET, IRIS_SOURCE, "iris"))
    if not target:
        raise DataError("--target is required with --data: name the label column")
    frame = _read(data)
    name = Path(data.split("?", 1)[0]).stem or "data"
    return validate(Dataset(frame, target, data, name))


def validate(ds: Dataset) -> Dataset:
    frame = ds.frame
    if ds.target not in frame.columns:
        raise DataError(
            f"--target {ds.target}: no such column in {ds.source}; "
            f"columns are {', '.join(map(str, frame.columns))}"
        )
    if not ds.features:
        raise DataError(f"--data {ds.source}: no feature columns besides '{ds.target}'")
    bad = [c for c in ds.features if not is_numeric_dtype(frame[c]) or is_bool_dtype(frame[c])]
    if bad:
        raise DataError(
            f"--data {ds.source}: non-numeric feature columns {', '.join(map(str, bad))}; "
            "encode them as numbers or drop them"
        )
    missing = [c for c in frame.columns if frame[c].isna().any()]
    if missing:
        raise DataError(f"--data {ds.source}: missing values in {', '.join(map(str, missing))}")
    if not np.isfinite(frame[ds.features].to_numpy(dtype=float)).all():
        raise DataError(f"--data {ds.source}: infinite values among the features")
    counts = frame[ds.target].value_counts()
    if len(counts) < 2:
        raise DataError(f"--target {ds.target}: needs at least 2 classes, found {len(counts)}")
    small = counts[counts < MIN_ROWS_PER_CLASS]
    if not small.empty:
        detail = ", ".join(f"{k!s}={v}" for k, v in small.items())
        raise DataError(
            f"--data {ds.source}: too few rows per class (need {MIN_ROWS_PER_CLASS}): {detail}"
        )
    # Float features make the model signature stable whatever the file's integer columns are.
    features = frame[ds.features].astype("float64")
    return Dataset(pd.concat([features, frame[ds.target]], axis=1), ds.target, ds.source, ds.name)


def holdout_split(ds: Dataset) -> Split:
    """The fixed, stratified holdout: identical rows on every run."""
    X_train, X_holdout, y_train, y_holdout = train_test_split(
        ds.X, ds.y, test_size=HOLDOUT_FRACTION, stratify=ds.y, random_state=HOLDOUT_SEED
    )
    return Split(X_train, y_train, X_holdout, y_holdout)


def bootstrap(X: pd.DataFrame, y: pd.Series, seed: int) -> tuple[pd.DataFrame, pd.Series]:
    """A stratified bootstrap resample: same size and class balance, rows drawn with replacement,
    so every class stays present and each seed gives a different sample."""
    X_boot, y_boot = resample(X, y, replace=True, stratify=y, random_state=seed)
    return X_boot, y_boot
