"""Never a different answer: a compiled form serves only if it gives scikit-learn's answers.

At load the compiled form (:mod:`.compiled`) and the model itself (scikit-learn, called as
MLflow's pyfunc calls it) predict the same check rows:

- the holdout rows the training job stored with the version (:mod:`mlkube.core.check_rows`);
- rows drawn uniformly across each feature's training range (from the same place; for a model
  without it, the range its own thresholds and a few sample rows span), and some beyond it;
- rows on and next to the decision boundaries: for trees, each split threshold (up to
  ``MAX_THRESHOLDS`` of them), with the feature set to the threshold, its float64 neighbours and
  its float32 rounding and neighbours (scikit-learn's trees compare float32); for every model,
  pairs of rows the compiled form labels differently, bisected down to adjacent floats.

The labels must be identical and every probability within ``TOLERANCE`` (absolute); otherwise
the compiled form is refused, with the reason in the log and in ``GET /model``, and the model is
served by scikit-learn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mlkube.core.check_rows import read_check_metadata
from service.runtime.compiled import Array, Compiled

TOLERANCE = 1e-12
UNIFORM_ROWS = 2000
MAX_THRESHOLDS = 1000
MAX_PAIRS = 96
BISECTIONS = 52


@dataclass(frozen=True)
class CheckRows:
    rows: Array
    counts: dict[str, int]  # rows of each kind, for the report

    def describe(self) -> str:
        parts = ", ".join(f"{n:,} {kind}" for kind, n in self.counts.items() if n)
        return f"{len(self.rows):,} check rows ({parts})"


def check_rows(compiled: Compiled, metadata: dict[str, Any] | None, seed: int = 0) -> CheckRows:
    """The rows to compare the compiled form and scikit-learn on (see the module doc)."""
    k = compiled.n_features
    rng = np.random.default_rng(seed)
    stored = read_check_metadata(metadata, k)
    samples = np.vstack(
        [np.zeros(k), np.ones(k), rng.normal(size=(6, k)), rng.normal(scale=100.0, size=(4, k))]
    )
    thresholds = compiled.thresholds()
    if len(thresholds) > MAX_THRESHOLDS:
        keep = rng.choice(len(thresholds), MAX_THRESHOLDS, replace=False)
        thresholds = [thresholds[i] for i in sorted(keep)]
    if stored is not None:
        holdout = np.asarray(stored[0], dtype=float).reshape(-1, k)
        low, high = np.asarray(stored[1]), np.asarray(stored[2])
    else:
        holdout = np.empty((0, k))
        pool = [samples[:8]]
        for feature, value in thresholds:  # the range the model's own splits span
            row = np.zeros(k)
            row[feature] = compiled.raw_values(feature, np.array([value]))[0]
            pool.append(row[None, :])
        span = np.vstack(pool)
        low, high = span.min(axis=0), span.max(axis=0)
    width = np.where(high > low, high - low, 1.0)
    uniform = rng.uniform(low, high, size=(UNIFORM_ROWS, k))
    beyond = rng.uniform(low - width / 2, high + width / 2, size=(UNIFORM_ROWS // 4, k))
    base = np.vstack([holdout, uniform[: max(0, 64 - len(holdout))]])

    at_thresholds = []
    for i, (feature, value) in enumerate(thresholds):
        single = np.float32(value)
        near = np.array(
            [
                value,
                np.nextafter(value, -np.inf),
                np.nextafter(value, np.inf),
                float(single),
                float(np.nextafter(single, np.float32(-np.inf))),
                float(np.nextafter(single, np.float32(np.inf))),
            ]
        )
        raw = compiled.raw_values(feature, near)
        rows = np.repeat(base[i % len(base)][None, :], len(raw), axis=0)
        rows[:, feature] = raw
        at_thresholds.append(rows)
    threshold_rows = np.vstack(at_thresholds) if at_thresholds else np.empty((0, k))

    candidates = np.vstack([holdout, samples, uniform, beyond, threshold_rows])
    boundary = _bisected(compiled, np.vstack([holdout, uniform]), rng)
    rows = np.vstack([candidates, boundary])
    rows = rows[np.isfinite(rows).all(axis=1)]
    counts = {
        "holdout": len(holdout),
        "sample": len(samples),
        "across the training range": len(uniform),
        "beyond it": len(beyond),
        "at or next to split thresholds": len(threshold_rows),
        "next to decision boundaries": len(boundary),
    }
    return CheckRows(rows, counts)


def _bisected(compiled: Compiled, pool: Array, rng: np.random.Generator) -> Array:
    """Rows on either side of the compiled form's decision boundaries: pairs of rows it labels
    differently, bisected 52 times (to about float64 precision)."""
    try:
        labels = compiled.predict(pool)
    except Exception:
        return np.empty((0, pool.shape[1]))
    order = rng.permutation(len(pool))
    differ = labels != labels[order]
    lo, hi = pool[differ][:MAX_PAIRS], pool[order][differ][:MAX_PAIRS]
    if not len(lo):
        return np.empty((0, pool.shape[1]))
    lo_labels = compiled.predict(lo)
    for _ in range(BISECTIONS):
        mid = lo + (hi - lo) / 2
        same = compiled.predict(mid) == lo_labels
        lo = np.where(same[:, None], mid, lo)
        hi = np.where(same[:, None], hi, mid)
    return np.vstack([lo, hi])


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str


def compare(
    compiled: Compiled, rows: CheckRows, expected: Array, expected_proba: Array | None
) -> Verdict:
    """The compiled form's answers on ``rows`` against scikit-learn's."""
    X = rows.rows
    try:
        labels = np.asarray(compiled.predict(X))
        proba = compiled.predict_proba(X) if expected_proba is not None else None
    except Exception as exc:
        return Verdict(False, f"{compiled.kind} failed on the check rows: {exc}")
    wrong = np.flatnonzero(labels != expected)
    if len(wrong):
        i = int(wrong[0])
        return Verdict(
            False,
            (
                f"{compiled.kind} gives another label than scikit-learn on {len(wrong):,} of "
                f"{len(X):,} check rows (first: {X[i].tolist()}: {labels[i]!r}, scikit-learn "
                f"{expected[i]!r})"
            ),
        )
    if proba is not None and expected_proba is not None:
        if proba.shape != expected_proba.shape:
            return Verdict(
                False,
                f"{compiled.kind} gives probabilities of shape {proba.shape}, "
                f"scikit-learn {expected_proba.shape}",
            )
        diff = np.abs(proba - expected_proba).max(axis=1)
        off = np.flatnonzero(~(diff <= TOLERANCE))
        if len(off):
            i = int(off[np.argmax(diff[off])])
            return Verdict(
                False,
                (
                    f"{compiled.kind} probabilities differ from scikit-learn's by more than "
                    f"{TOLERANCE:g} on {len(off):,} of {len(X):,} check rows "
                    f"(at most {diff[i]:.3g}, row {X[i].tolist()})"
                ),
            )
    within = f", probabilities within {TOLERANCE:g}" if expected_proba is not None else ""
    return Verdict(
        True, f"{compiled.kind}: same labels as scikit-learn{within} on {rows.describe()}"
    )
