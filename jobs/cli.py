"""Argument parsing shared by ``jobs.train`` and ``jobs.promote``: flags override env vars."""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from typing import Any, get_args

from pydantic import ValidationError

from jobs.settings import Classifier, Metric, TrainSettings, Trigger
from mlkube.core.backoff import Unreachable

EXIT_BAD_INPUT = 2
EXIT_UNREACHABLE = 1

# flag -> settings field; the env var of each is the field's alias (see TrainSettings).
FLAGS = {
    "--tracking-uri": "tracking_uri",
    "--model-name": "model_name",
    "--alias": "model_alias",
    "--experiment": "experiment",
    "--data": "data",
    "--target": "target",
    "--classifier": "classifier",
    "--metric": "metric",
    "--min-improvement": "min_improvement",
    "--trigger": "trigger",
    "--seed": "seed",
    "--connect-timeout": "connect_timeout",
}
_FIELD_TO_FLAG = {field: flag for flag, field in FLAGS.items()}


def env_name(field: str) -> str:
    alias = TrainSettings.model_fields[field].alias
    assert alias is not None
    return alias


def add_settings_flags(parser: argparse.ArgumentParser, fields: list[str]) -> None:
    choices: dict[str, Any] = {"classifier": Classifier, "metric": Metric, "trigger": Trigger}
    for flag, field in FLAGS.items():
        if field not in fields:
            continue
        info = TrainSettings.model_fields[field]
        kwargs: dict[str, Any] = {"dest": field, "default": None}
        if field in choices:
            kwargs["choices"] = get_args(choices[field])
        help_text = info.description or field.replace("_", " ")
        help_text = f"{help_text} (env {env_name(field)}, default {info.default})"
        parser.add_argument(flag, help=help_text, **kwargs)


def settings_from(args: argparse.Namespace) -> TrainSettings:
    """Env vars, overridden by the flags given. Raises SystemExit(2) naming the flag/env."""
    overrides = {f: v for f, v in vars(args).items() if f in _FIELD_TO_FLAG and v is not None}
    try:
        return TrainSettings(**overrides)
    except ValidationError as exc:
        problems = [f"{_where(err['loc'])}: {err['msg']}" for err in exc.errors()]
        sys.stderr.write("error: " + "; ".join(problems) + "\n")
        raise SystemExit(EXIT_BAD_INPUT) from None


def _where(loc: tuple[int | str, ...]) -> str:
    """'--flag / ENV_VAR' for a validation error's location (pydantic reports the alias)."""
    key = str(loc[0]) if loc else "?"
    field = next((f for f, i in TrainSettings.model_fields.items() if key in (f, i.alias)), None)
    if field is None:
        return key
    flag = _FIELD_TO_FLAG.get(field)
    return f"{flag} / {env_name(field)}" if flag else env_name(field)


def report_failure(exc: Exception, settings: TrainSettings) -> int:
    """The message and exit code for an expected failure: 2 bad input, 1 MLflow unreachable."""
    if isinstance(exc, Unreachable):
        local = "127.0.0.1" in settings.tracking_uri or "localhost" in settings.tracking_uri
        hint = "start one with `make up` (in another terminal), or " if local else ""
        sys.stderr.write(
            f"error: cannot reach the MLflow tracking server at {settings.tracking_uri}: {exc}\n"
            f"  {hint}point MLFLOW_TRACKING_URI / --tracking-uri at yours\n"
        )
        return EXIT_UNREACHABLE
    sys.stderr.write(f"error: {exc}\n")
    return EXIT_BAD_INPUT


def git_commit(settings: TrainSettings) -> str | None:
    if settings.git_commit:
        return settings.git_commit
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    for noisy in ("urllib3", "mlflow.utils.requirements_utils", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
