"""Flags, env vars and their errors, without MLflow."""

import pytest

from jobs.cli import settings_from
from jobs.model import build_pipeline
from jobs.train import build_parser, parse_params
from jobs.training import seed_for


def test_flags_override_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAIN_CLASSIFIER", "random_forest")
    monkeypatch.setenv("MODEL_NAME", "from-env")
    settings = settings_from(build_parser().parse_args(["--model-name", "from-flag"]))
    assert settings.classifier == "random_forest"
    assert settings.model_name == "from-flag"


def test_bad_env_value_names_flag_and_env(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TRAIN_MIN_IMPROVEMENT", "-1")
    with pytest.raises(SystemExit) as exc:
        settings_from(build_parser().parse_args([]))
    assert exc.value.code == 2
    assert "--min-improvement / TRAIN_MIN_IMPROVEMENT" in capsys.readouterr().err


def test_unknown_classifier_flag_is_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["--classifier", "xgboost"])
    assert exc.value.code == 2
    assert "--classifier" in capsys.readouterr().err


def test_params() -> None:
    assert parse_params(["C=0.5", "max_iter=200", "fit_intercept=false"]) == {
        "C": 0.5,
        "max_iter": 200,
        "fit_intercept": False,
    }
    with pytest.raises(ValueError, match="--param oops: expected NAME=VALUE"):
        parse_params(["oops"])
    with pytest.raises(ValueError, match="--param colour: not a parameter of random_forest"):
        build_pipeline("random_forest", {"colour": "red"}, seed=1)


def test_seed_is_the_run_date() -> None:
    from datetime import datetime

    assert seed_for(datetime(2026, 11, 22, 3, 0)) == 20261122


def test_histogram_gradient_boosting_can_be_chosen() -> None:
    settings = settings_from(build_parser().parse_args(["--classifier", "hist_gradient_boosting"]))
    pipeline = build_pipeline(settings.classifier, {"max_iter": 20}, seed=3)
    final = pipeline.steps[-1][1]
    assert type(final).__name__ == "HistGradientBoostingClassifier"
    assert final.max_iter == 20
    assert final.random_state == 3
