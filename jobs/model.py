"""The scikit-learn pipelines a run can train, and how they are scored."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import pandas as pd
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, log_loss
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from jobs.settings import Classifier, Metric

# Higher is better for every metric but log loss; the gate needs to know which way is up.
LOWER_IS_BETTER: frozenset[str] = frozenset({"log_loss"})


class Predictor(Protocol):
    def predict(self, X: pd.DataFrame) -> Any: ...


def make_classifier(kind: Classifier, params: dict[str, Any], seed: int) -> Any:
    if kind == "logistic_regression":
        base: Any = LogisticRegression(max_iter=1000)
    elif kind == "random_forest":
        base = RandomForestClassifier(n_estimators=100, random_state=seed)
    elif kind == "hist_gradient_boosting":
        base = HistGradientBoostingClassifier(random_state=seed)
    else:  # the deliberately weak baseline: always the most frequent class
        base = DummyClassifier(strategy="most_frequent")
    unknown = sorted(set(params) - set(base.get_params()))
    if unknown:
        raise ValueError(
            f"--param {', '.join(unknown)}: not a parameter of {kind}; "
            f"choose from {', '.join(sorted(base.get_params()))}"
        )
    return base.set_params(**params)


def build_pipeline(kind: Classifier, params: dict[str, Any], seed: int) -> Pipeline:
    return Pipeline(
        [("scale", StandardScaler()), ("classify", make_classifier(kind, params, seed))]
    )


def score(model: Predictor, X: pd.DataFrame, y: pd.Series) -> dict[str, float]:
    """accuracy and macro F1 always; log loss when the model gives class probabilities."""
    predicted = np.asarray(model.predict(X))
    scores = {
        "accuracy": float(accuracy_score(y, predicted)),
        "f1_macro": float(f1_score(y, predicted, average="macro")),
    }
    predict_proba = getattr(model, "predict_proba", None)
    if predict_proba is not None:
        classes = getattr(model, "classes_", None)
        scores["log_loss"] = float(log_loss(y, predict_proba(X), labels=classes))
    return scores


def improvement(metric: Metric, challenger: float, champion: float) -> float:
    """How much better the challenger is, positive when it wins, in the metric's units."""
    delta = champion - challenger if metric in LOWER_IS_BETTER else challenger - champion
    return round(delta, 12)  # ties must compare equal despite float noise
