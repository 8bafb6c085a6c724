"""What the training job reads from its environment (the CronJob sets these) and its flags."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mlkube.core.settings import ModelSettings

Classifier = Literal["logistic_regression", "random_forest", "hist_gradient_boosting", "dummy"]
Metric = Literal["f1_macro", "accuracy", "log_loss"]
Trigger = Literal["cron", "manual", "ci"]


class TrainSettings(ModelSettings):
    """Every field is an env var (its alias) and a flag of ``python -m jobs.train``."""

    experiment: str = Field(
        "mlkube-training", alias="TRAIN_EXPERIMENT", min_length=1, description="MLflow experiment"
    )
    data: str | None = Field(
        None, alias="TRAIN_DATA", description="CSV/Parquet path or URL; unset: sklearn Iris"
    )
    target: str | None = Field(None, alias="TRAIN_TARGET", description="label column of TRAIN_DATA")
    classifier: Classifier = Field(
        "logistic_regression", alias="TRAIN_CLASSIFIER", description="model to fit"
    )
    metric: Metric = Field(
        "f1_macro", alias="TRAIN_METRIC", description="holdout metric the gate compares"
    )
    min_improvement: float = Field(
        0.0,
        alias="TRAIN_MIN_IMPROVEMENT",
        ge=0.0,
        description="margin the challenger must win by (ties keep the champion)",
    )
    trigger: Trigger = Field("manual", alias="TRAIN_TRIGGER", description="what started the run")
    seed: int | None = Field(
        None, alias="TRAIN_SEED", ge=0, description="bootstrap seed; unset: the run date YYYYMMDD"
    )
    connect_timeout: float = Field(
        60.0,
        alias="TRAIN_CONNECT_TIMEOUT",
        gt=0,
        description="seconds to retry an unreachable MLflow before failing",
    )
    git_commit: str | None = Field(
        None, alias="GIT_COMMIT", description="code version to tag runs with (else `git rev-parse`)"
    )
