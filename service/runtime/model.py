"""A loaded model version and the fastest correct way to call it.

MLflow's pyfunc ``predict`` enforces the signature with pandas on every call (milliseconds). The
service validates requests itself (:mod:`.schema`), so for scikit-learn models whose
columns are all float64 it skips that, fastest first:

1. a compiled form (:mod:`.compiled`): ``numpy-linear`` for logistic regressions,
   ``treelite`` for random forests, extra trees and gradient boosting (histogram or not), behind
   the pipeline's scalers; served only once :mod:`.check` found it to give
   scikit-learn's labels and probabilities on the holdout and generated rows;
2. ``sklearn-numpy``: the estimator itself on a numpy matrix. That copy has its recorded feature
   names removed (shallow copies: the fitted arrays are shared), because names and order were
   checked already and scikit-learn would otherwise warn on every numpy call;
3. ``pyfunc``: MLflow's own predict on a DataFrame, for everything else.

``serving_path`` and ``serving_reason`` say which one serves and why (the log and ``GET /model``).
"""

from __future__ import annotations

import copy
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from service.errors import InvalidInput
from service.runtime.check import check_rows, compare
from service.runtime.compiled import compile_model
from service.runtime.schema import Features, FeatureSchema

log = logging.getLogger(__name__)

Array = np.ndarray[Any, Any]


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str
    alias: str | None  # None when the version was pinned (MODEL_VERSION)
    run_id: str | None
    source: str | None
    loaded_at: datetime
    load_seconds: float
    flavors: tuple[str, ...]
    signature: dict[str, Any] | None

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


@dataclass(frozen=True)
class Prediction:
    """The answer for one request's rows, from the model that computed it."""

    model: LoadedModel
    labels: Array
    proba: Array | None


class LoadedModel:
    """One model version, ready to predict. Immutable once built: swapping versions replaces the
    whole object, so a request holding a reference keeps a consistent model."""

    def __init__(self, info: ModelInfo, pyfunc: Any) -> None:
        self.info = info
        self.pyfunc = pyfunc
        self.input_schema = pyfunc.metadata.get_input_schema()
        self.schema = FeatureSchema.from_mlflow(self.input_schema)
        raw = _raw_model(pyfunc)
        self.raw = raw
        self.has_proba = raw is not None and callable(getattr(raw, "predict_proba", None))
        classes = getattr(raw, "classes_", None) if raw is not None else None
        self.classes: list[Any] | None = (
            np.asarray(classes).tolist() if classes is not None else None
        )
        self.class_keys: list[str] | None = (
            [str(c) for c in self.classes] if self.classes is not None else None
        )
        # MLflow's JSON for each class label, to answer /invocations without json.dumps
        self._label_json: dict[Any, str] = (
            {c: json.dumps(c) for c in self.classes} if self.classes is not None else {}
        )
        self._fast: Any = None
        # "numpy-linear", "treelite", "sklearn-numpy" or None (pyfunc)
        self.fast_kind: str | None = None
        if raw is None:
            self.serving_reason = "not a scikit-learn model: MLflow's pyfunc serves it"
        elif self.schema is None or not self.schema.all_double:
            self.serving_reason = "its signature has columns that are not doubles: pyfunc"
        else:
            metadata = getattr(pyfunc.metadata, "metadata", None)
            self._fast, self.fast_kind, self.serving_reason = _fast_estimator(
                raw, self.schema, pyfunc, self.has_proba, metadata
            )
        self.serving_path = self.fast_kind or "pyfunc"
        self._cost = _measure_cost(self) if self._fast is not None else (1.0, 0.0)
        log.info("%s: served by %s: %s", info.uri, self.serving_path, self.serving_reason)
        log.info(
            "%s: flavors %s, ~%.0f us per call + %.2f us per row",
            info.uri,
            ",".join(info.flavors),
            self._cost[0] * 1e6,
            self._cost[1] * 1e6,
        )

    @property
    def fast(self) -> bool:
        """True when float64 matrices go straight to the estimator (and can be batched)."""
        return self._fast is not None

    def predictions_json(self, labels: Array) -> bytes:
        """``json.dumps({"predictions": labels.tolist()})``, as MLflow answers, byte for byte;
        built from the precomputed label strings when every label is a known class."""
        values = labels.tolist()
        try:
            items = ", ".join([self._label_json[v] for v in values])
        except (KeyError, TypeError):
            return json.dumps({"predictions": values}).encode()
        return b'{"predictions": [' + items.encode() + b"]}"

    def estimated_seconds(self, rows: int) -> float:
        """What one fast-path call on ``rows`` rows (with probabilities) costs, as measured at
        load; 1 s for models without a fast path (always "expensive")."""
        base, per_row = self._cost
        return base + per_row * rows

    def predict(self, features: Features, want_proba: bool) -> tuple[Array, Array | None]:
        """Labels (and class probabilities when asked and available) for ``features``.

        Runs in a worker thread. A failure of the model on this input raises InvalidInput (the
        input was valid for the signature but not for the model: the client can fix it)."""
        try:
            if isinstance(features, np.ndarray) and self._fast is not None:
                labels = np.asarray(self._fast.predict(features))
                proba = (
                    self._fast.predict_proba(features) if want_proba and self.has_proba else None
                )
                _check_finite(labels, proba)
                return labels, proba
            frame = (
                features
                if isinstance(features, pd.DataFrame)
                else pd.DataFrame(features, columns=list(self.schema.names if self.schema else ()))
            )
            labels = np.asarray(self.pyfunc.predict(frame))
            proba = None
            if want_proba and self.has_proba and self.raw is not None:
                proba = self.raw.predict_proba(frame)
        except InvalidInput:
            raise
        except Exception as exc:  # the model's own error on this input
            raise InvalidInput(f"the model could not predict this input: {exc}") from exc
        _check_finite(labels, proba)
        return labels, proba


def _check_finite(labels: Array, proba: Array | None) -> None:
    """A prediction that is not a number is no answer: InvalidInput naming the first such row
    (a batch that fails this is re-run request by request, so only the bad one fails)."""
    bad = None
    if proba is not None and not np.isfinite(proba).all():
        bad = np.flatnonzero(~np.isfinite(proba).all(axis=1))
    elif labels.dtype.kind == "f" and not np.isfinite(labels).all():
        bad = np.flatnonzero(~np.isfinite(labels.reshape(len(labels), -1)).all(axis=1))
    if bad is not None and len(bad):
        raise InvalidInput(
            f"row {int(bad[0])}: the model's answer is not a finite number (an input value too "
            "large for the model's arithmetic?)"
        )


def _measure_cost(model: LoadedModel) -> tuple[float, float]:
    """(seconds per call, seconds per row) of the fast path with probabilities, best of a few
    timed runs on 1 and 257 rows."""
    assert model.schema is not None
    k = len(model.schema.names)

    def best(rows: int, repeat: int) -> float:
        X = np.ones((rows, k))
        timings = []
        for _ in range(repeat):
            started = time.perf_counter()
            model.predict(X, want_proba=True)
            timings.append(time.perf_counter() - started)
        return min(timings)

    one, many = best(1, 7), best(257, 3)
    per_row = max(many - one, 0.0) / 256
    return max(one - per_row, 0.0), per_row


def _raw_model(pyfunc: Any) -> Any:
    if "sklearn" not in pyfunc.metadata.flavors:
        return None
    try:
        return pyfunc.get_raw_model()
    except Exception:  # older wrappers: no raw model, pyfunc path only
        return None


def _without_feature_names(estimator: Any) -> Any:
    """A shallow copy of ``estimator`` (and of a Pipeline's steps) minus ``feature_names_in_``."""
    clone = copy.copy(estimator)
    steps = getattr(clone, "steps", None)
    if isinstance(steps, list):
        clone.steps = [(name, _without_feature_names(step)) for name, step in steps]
    if "feature_names_in_" in vars(clone):
        del clone.feature_names_in_
    return clone


def _fast_estimator(
    raw: Any, schema: FeatureSchema, pyfunc: Any, has_proba: bool, metadata: Any = None
) -> tuple[Any, str | None, str]:
    """The fastest numpy-callable form of ``raw`` that gives pyfunc's labels (exactly) and the
    estimator's probabilities (to :data:`.check.TOLERANCE`), its kind, and why; (None,
    None, why) when no form does, or the estimator was fitted on other columns or in another
    order."""
    fitted = getattr(raw, "feature_names_in_", None)
    if fitted is not None and [str(n) for n in fitted] != list(schema.names):
        return None, None, "fitted on other columns or in another order than its signature: pyfunc"
    names = list(schema.names)

    def reference(X: Array) -> tuple[Array, Array | None]:
        from threadpoolctl import threadpool_limits

        frame = pd.DataFrame(X, columns=names)
        # One thread: OpenMP's workers (histogram boosting) spin for seconds on a busy machine
        # for a few thousand rows; the answers are the same.
        with threadpool_limits(limits=1):
            labels = np.asarray(pyfunc.predict(frame))
            return labels, raw.predict_proba(frame) if has_proba else None

    compiled, why_not = compile_model(raw)
    if compiled is not None and compiled.n_features != len(names):
        compiled, why_not = None, "the model's feature count differs from its signature's"
    if compiled is not None:
        try:
            rows = check_rows(compiled, metadata if isinstance(metadata, dict) else None)
            expected, expected_proba = reference(rows.rows)
        except Exception as exc:
            log.info("the model cannot predict the check rows (%s); serving through pyfunc", exc)
            return None, None, f"scikit-learn cannot predict the check rows ({exc}): pyfunc"
        verdict = compare(compiled, rows, expected, expected_proba)
        if verdict.ok:
            return compiled, compiled.kind, verdict.reason
        why_not = f"compiled form refused: {verdict.reason}"
        log.warning("%s", why_not)
    # scikit-learn itself on numpy: the same estimator, so a sanity check on sample rows suffices
    rng = np.random.default_rng(0)
    k = len(names)
    sample = np.vstack(
        [np.zeros(k), np.ones(k), rng.normal(size=(6, k)), rng.normal(scale=100.0, size=(4, k))]
    )
    candidate = _without_feature_names(raw)
    try:
        expected, expected_proba = reference(sample)
        same = np.array_equal(np.asarray(candidate.predict(sample)), expected)
        if same and expected_proba is not None:
            same = np.allclose(candidate.predict_proba(sample), expected_proba, rtol=0, atol=1e-12)
    except Exception as exc:
        log.info("sklearn-numpy path unavailable (%s)", exc)
        return None, None, f"{why_not}; scikit-learn on numpy failed ({exc}): pyfunc"
    if not same:
        return None, None, f"{why_not}; scikit-learn on numpy disagrees with pyfunc: pyfunc"
    return candidate, "sklearn-numpy", f"{why_not}: scikit-learn serves it"
