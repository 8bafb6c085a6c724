"""Compiled forms of scikit-learn models: the same answers without scikit-learn's per-call cost.

A scikit-learn ``predict`` on one row spends most of its time validating its input, not
computing: 0.7 ms here for a 4-feature logistic regression whose arithmetic takes a few
microseconds, ~20 ms for a 100-tree random forest (one Python call per tree). The service
validates requests itself, so it runs a compiled form instead:

- ``numpy-linear``: ``LogisticRegression`` as numpy, exactly the operations scikit-learn runs
  (``X @ coef_.T + intercept_``, argmax or the sign, softmax or the logistic function);
- ``treelite``: ``RandomForestClassifier``, ``ExtraTreesClassifier``,
  ``GradientBoostingClassifier`` and ``HistGradientBoostingClassifier`` imported into Treelite
  (converted at load, in milliseconds) and evaluated by its C++ predictor. Forests average the
  trees' class probabilities as scikit-learn does; for boosting Treelite computes the raw scores
  and scikit-learn's own link (its loss's ``predict_proba``) turns them into probabilities, so
  both are computed the same way. The input is rounded to float32 first where scikit-learn does
  (its trees compare float32 features), not for histogram boosting (float64);
- either one behind the pipeline's preprocessing: ``StandardScaler``, ``MinMaxScaler`` (without
  clipping) and ``MaxAbsScaler`` as numpy, the same element-wise operations.

Only these exact types are recognized; :func:`compile_model` says why anything else is not.
A compiled form is served only after :mod:`.check` has found it to give scikit-learn's
answers on the holdout and on generated rows, boundaries included.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Array = np.ndarray[Any, Any]


class Transform:
    """One preprocessing step as element-wise numpy: ``apply`` computes what scikit-learn's
    ``transform`` does, with the same operations in the same order; ``invert`` maps values back
    (approximately: only to place generated check rows near thresholds)."""

    def __init__(
        self, name: str, apply: Callable[[Array], Array], invert: Callable[[Array], Array]
    ):
        self.name = name
        self.apply = apply
        self.invert = invert


def _transform(step: Any) -> Transform | None:
    from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, StandardScaler

    kind = type(step)
    if kind is StandardScaler and hasattr(step, "n_features_in_"):
        mean = step.mean_ if step.with_mean else None
        scale = step.scale_ if step.with_std else None

        def standard(X: Array) -> Array:
            if mean is not None:
                X = X - mean
            if scale is not None:
                X = X / scale
            return X

        def standard_back(X: Array) -> Array:
            if scale is not None:
                X = X * scale
            if mean is not None:
                X = X + mean
            return X

        return Transform("StandardScaler", standard, standard_back)
    if kind is MinMaxScaler and hasattr(step, "scale_") and not step.clip:
        mm_scale, mm_min = step.scale_, step.min_
        return Transform(
            "MinMaxScaler", lambda X: X * mm_scale + mm_min, lambda X: (X - mm_min) / mm_scale
        )
    if kind is MaxAbsScaler and hasattr(step, "scale_"):
        ma_scale = step.scale_
        return Transform("MaxAbsScaler", lambda X: X / ma_scale, lambda X: X * ma_scale)
    return None


class Compiled:
    """The common part: preprocessing, classes, and what the check needs to know."""

    kind = ""
    n_features = 0

    def __init__(self, transforms: list[Transform], final: Any) -> None:
        self.transforms = transforms
        self.classes: Array = final.classes_

    def _pre(self, X: Array) -> Array:
        for t in self.transforms:
            X = t.apply(X)
        return X

    def raw_values(self, feature: int, values: Array) -> Array:
        """Input values of ``feature`` that preprocess to (about) ``values``."""
        if not self.transforms:
            return values
        X = np.zeros((len(values), self.n_features))
        X[:, feature] = values
        for t in reversed(self.transforms):
            X = t.invert(X)
        column: Array = X[:, feature]
        return column

    def thresholds(self) -> list[tuple[int, float]]:
        """(feature, threshold) pairs where the model's answer can change, in the final
        estimator's input space: empty for models that have none (linear)."""
        return []

    def predict(self, X: Array) -> Array:
        raise NotImplementedError

    def predict_proba(self, X: Array) -> Array:
        raise NotImplementedError


class LinearPipeline(Compiled):
    """Preprocessing followed by a logistic regression."""

    kind = "numpy-linear"

    def __init__(self, transforms: list[Transform], final: Any) -> None:
        super().__init__(transforms, final)
        self.n_features = final.coef_.shape[1]
        self._coef_t = final.coef_.T  # a view, as scikit-learn multiplies by: same BLAS call
        self._intercept = final.intercept_
        self._binary = final.coef_.shape[0] == 1

    def _scores(self, X: Array) -> Array:
        scores: Array = self._pre(X) @ self._coef_t + self._intercept
        if not np.isfinite(scores).all():
            # scikit-learn refuses such input between the steps ("Input X contains infinity");
            # so does this, naming the row.
            row = int(np.flatnonzero(~np.isfinite(scores).all(axis=1))[0])
            raise ValueError(
                f"row {row}: its values overflow the model's arithmetic (infinity); "
                "the input is outside any range the model was trained on"
            )
        return scores

    def predict(self, X: Array) -> Array:
        scores = self._scores(X)
        if self._binary:
            indices = (scores.ravel() > 0).astype(int)
        else:
            indices = scores.argmax(axis=1)
        labels: Array = self.classes.take(indices, axis=0)
        return labels

    def predict_proba(self, X: Array) -> Array:
        scores = self._scores(X)
        if self._binary:
            from scipy.special import expit

            prob = expit(scores.ravel())
            return np.stack([1 - prob, prob], axis=1)
        from sklearn.utils.extmath import softmax

        result: Array = softmax(scores, copy=False)
        return result


class TreePipeline(Compiled):
    """Preprocessing followed by a tree ensemble, evaluated by Treelite."""

    kind = "treelite"

    def __init__(self, transforms: list[Transform], final: Any, family: str) -> None:
        import treelite
        import treelite.gtil

        super().__init__(transforms, final)
        self._final = final
        self._family = family  # "forest", "boosting" or "hist"
        self.n_features = int(final.n_features_in_)
        self._model = treelite.sklearn.import_model(final)
        self._gtil = treelite.gtil.predict
        self._link: Any = getattr(final, "_loss", None)  # boosting: scikit-learn's own link
        self._n_classes = len(self.classes)

    def _input(self, X: Array) -> Array:
        X = self._pre(X)
        if self._family != "hist":  # scikit-learn's trees compare float32 features
            X = X.astype(np.float32).astype(np.float64)
        elif not X.flags.c_contiguous:
            X = np.ascontiguousarray(X)
        if not np.isfinite(X).all():
            row = int(np.flatnonzero(~np.isfinite(X).all(axis=1))[0])
            raise ValueError(
                f"row {row}: its values overflow the model's arithmetic (infinity); "
                "the input is outside any range the model was trained on"
            )
        return X

    def _raw(self, X: Array) -> Array:
        """Boosting: the raw scores, shaped as scikit-learn's ``decision_function``."""
        raw: Array = self._gtil(self._model, self._input(X), nthread=1, pred_margin=True)
        raw = raw.reshape(len(X), -1)
        return raw.ravel() if raw.shape[1] == 1 else raw

    def predict(self, X: Array) -> Array:
        if self._family == "forest":
            indices = self.predict_proba(X).argmax(axis=1)
        else:
            raw = self._raw(X)
            if raw.ndim == 1:  # two classes: GradientBoosting says >= 0, HistGradientBoosting > 0
                indices = (raw >= 0 if self._family == "boosting" else raw > 0).astype(int)
            else:
                indices = raw.argmax(axis=1)
        labels: Array = self.classes.take(indices, axis=0)
        return labels

    def predict_proba(self, X: Array) -> Array:
        if self._family == "forest":
            proba: Array = self._gtil(self._model, self._input(X), nthread=1)
            return proba.reshape(len(X), self._n_classes)
        result: Array = self._link.predict_proba(self._raw(X))
        return result

    def thresholds(self) -> list[tuple[int, float]]:
        pairs: set[tuple[int, float]] = set()
        if self._family == "hist":
            for stage in self._final._predictors:
                for predictor in stage:
                    nodes = predictor.nodes[~predictor.nodes["is_leaf"].astype(bool)]
                    pairs.update(
                        zip(
                            nodes["feature_idx"].tolist(),
                            nodes["num_threshold"].tolist(),
                            strict=True,
                        )
                    )
            return sorted(pairs)
        trees = np.asarray(self._final.estimators_).ravel()
        for tree in trees:
            t = tree.tree_
            inner = t.feature >= 0
            pairs.update(zip(t.feature[inner].tolist(), t.threshold[inner].tolist(), strict=True))
        return sorted(pairs)


def compile_model(estimator: Any) -> tuple[Compiled | None, str]:
    """A compiled form of ``estimator`` (a Pipeline of supported preprocessing steps and a
    supported classifier, or the bare classifier), or None and the reason there is none."""
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        GradientBoostingClassifier,
        HistGradientBoostingClassifier,
        RandomForestClassifier,
    )
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    if type(estimator) is Pipeline:
        steps = [step for _, step in estimator.steps if step is not None and step != "passthrough"]
    else:
        steps = [estimator]
    if not steps:
        return None, "an empty pipeline"
    final = steps[-1]
    transforms: list[Transform] = []
    for step in steps[:-1]:
        transform = _transform(step)
        if transform is None:
            return None, f"no compiled form of the preprocessing step {type(step).__name__}"
        transforms.append(transform)
    kind = type(final)
    if not hasattr(final, "classes_") or getattr(final, "n_outputs_", 1) != 1:
        return None, f"{kind.__name__} is not a fitted single-output classifier"
    if kind is LogisticRegression:
        if getattr(final, "coef_", None) is None or final.coef_.ndim != 2:
            return None, "LogisticRegression without coefficients"
        return LinearPipeline(transforms, final), ""
    families = {
        RandomForestClassifier: "forest",
        ExtraTreesClassifier: "forest",
        GradientBoostingClassifier: "boosting",
        HistGradientBoostingClassifier: "hist",
    }
    family = families.get(kind)
    if family is None:
        return None, f"no compiled form of {kind.__name__}"
    if family == "hist" and getattr(final, "is_categorical_", None) is not None:
        return None, "HistGradientBoostingClassifier with categorical features"
    if family == "boosting" and final.init not in (None, "zero"):
        return None, "GradientBoostingClassifier with a custom init estimator"
    try:
        return TreePipeline(transforms, final, family), ""
    except ImportError:
        return None, "treelite is not installed"
    except Exception as exc:  # a converter gap: say which
        return None, f"treelite cannot import {kind.__name__}: {type(exc).__name__}: {exc}"
