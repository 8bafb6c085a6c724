"""Rows the training job stores inside the MLflow model so that the model server can check its
compiled form of the model against scikit-learn before serving it.

The training job writes them into the MLmodel file's ``metadata`` (so the registry carries them
with the version, no extra round trip): the holdout rows (at most ``MAX_CHECK_ROWS``) and each
feature's training range. The model server reads them back; a model without them (trained
before, or elsewhere) is checked on rows generated from what the model itself says.
"""

from __future__ import annotations

from typing import Any

METADATA_KEY = "mlkube_check"
MAX_CHECK_ROWS = 256


def check_metadata(
    holdout: list[list[float]], low: list[float], high: list[float]
) -> dict[str, Any]:
    """The ``metadata`` entry for ``mlflow.<flavor>.log_model``."""
    return {
        METADATA_KEY: {
            "holdout": [[float(v) for v in row] for row in holdout[:MAX_CHECK_ROWS]],
            "min": [float(v) for v in low],
            "max": [float(v) for v in high],
        }
    }


def read_check_metadata(
    metadata: dict[str, Any] | None, features: int
) -> tuple[list[list[float]], list[float], list[float]] | None:
    """(holdout rows, per-feature minimum, per-feature maximum) when ``metadata`` holds a
    well-formed entry for ``features`` columns, else None (never raises)."""
    entry = (metadata or {}).get(METADATA_KEY)
    if not isinstance(entry, dict):
        return None
    try:
        holdout = [[float(v) for v in row] for row in entry.get("holdout", [])]
        low = [float(v) for v in entry["min"]]
        high = [float(v) for v in entry["max"]]
    except (KeyError, TypeError, ValueError):
        return None
    if len(low) != features or len(high) != features or any(len(r) != features for r in holdout):
        return None
    return holdout, low, high
