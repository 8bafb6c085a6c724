"""Put an existing run's model through the same champion/challenger gate as the daily job.

    python -m jobs.promote --run-id RUN_ID [--model-name iris-classifier] [--summary-file F]

For a data scientist's notebook run, and the promote workflow: the model logged by the run is
registered (unless it already is), scored on the fixed holdout, and moves the alias only if it
beats the champion. Exit 0 whatever the decision, 2 on bad input, 1 when MLflow is unreachable."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from jobs.cli import (
    add_settings_flags,
    report_failure,
    settings_from,
    setup_logging,
)
from jobs.data import DataError, holdout_split, load_dataset
from jobs.gate import Decision, run_gate, score_version
from jobs.settings import TrainSettings
from mlkube.core.backoff import Unreachable
from mlkube.core.tracking import wait_for_tracking_server

log = logging.getLogger("jobs.promote")


def registered_version(client: MlflowClient, model_name: str, run_id: str, artifact: str) -> str:
    """The version of ``model_name`` made from this run, registering the run's model if needed."""
    for mv in client.search_model_versions(f"name='{model_name}' and run_id='{run_id}'"):
        return str(mv.version)
    try:
        client.get_run(run_id)
    except MlflowException as exc:
        raise ValueError(f"--run-id {run_id}: no such run ({exc.error_code})") from exc
    try:
        mv = mlflow.register_model(f"runs:/{run_id}/{artifact}", model_name)
    except MlflowException as exc:
        raise ValueError(
            f"--run-id {run_id}: no model logged at '{artifact}' in this run "
            f"(use --artifact-path): {exc.message}"
        ) from exc
    log.info("registered run %s as %s v%s", run_id, model_name, mv.version)
    return str(mv.version)


def promote(
    settings: TrainSettings, run_id: str, *, artifact: str = "model", dry_run: bool = False
) -> tuple[str, Decision]:
    dataset = load_dataset(settings.data, settings.target)
    split = holdout_split(dataset)
    wait_for_tracking_server(settings.tracking_uri, timeout=settings.connect_timeout)
    mlflow.set_tracking_uri(settings.tracking_uri)
    client = MlflowClient(settings.tracking_uri)
    version = registered_version(client, settings.model_name, run_id, artifact)
    try:
        scores = score_version(settings.model_name, version, split.X_holdout, split.y_holdout)
    except Exception as exc:  # a model that cannot score the holdout is bad input, not a crash
        raise ValueError(
            f"--run-id {run_id}: v{version} cannot predict the holdout of {dataset.source}: {exc}"
        ) from exc
    decision = run_gate(
        client,
        model_name=settings.model_name,
        alias=settings.model_alias,
        version=version,
        run_id=run_id,
        challenger_scores=scores,
        X_holdout=split.X_holdout,
        y_holdout=split.y_holdout,
        metric=settings.metric,
        min_improvement=settings.min_improvement,
        no_promote=dry_run,
    )
    return version, decision


def markdown(model_name: str, alias: str, version: str, run_id: str, d: Decision) -> str:
    rows = [
        ("decision", "**promoted**" if d.promote else "not promoted"),
        ("reason", d.reason),
        ("candidate", f"{model_name} v{version} (run `{run_id}`)"),
        (f"candidate {d.metric}", f"{d.challenger_score:.4f}"),
        (f"champion @{alias}", f"v{d.champion_version}" if d.champion_version else "none"),
        (f"champion {d.metric}", "-" if d.champion_score is None else f"{d.champion_score:.4f}"),
        ("delta", "-" if d.delta is None else f"{d.delta:+.4f}"),
    ]
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    return f"### Champion/challenger gate\n\n| | |\n|---|---|\n{table}\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlkube-promote",
        description="Promote a run's model to the alias only if it beats the current champion "
        "on the fixed holdout (the same rule as the daily training job).",
    )
    parser.add_argument("--run-id", required=True, help="the MLflow run that logged the model")
    parser.add_argument("--artifact-path", default="model", help="the model's name in the run")
    fields = [
        "tracking_uri",
        "model_name",
        "model_alias",
        "data",
        "target",
        "metric",
        "min_improvement",
        "connect_timeout",
    ]
    add_settings_flags(parser, fields)
    parser.add_argument("--dry-run", action="store_true", help="decide and tag, never move alias")
    parser.add_argument("--summary-file", type=Path, help="append the decision as Markdown here")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    settings = settings_from(args)
    try:
        version, decision = promote(
            settings, args.run_id, artifact=args.artifact_path, dry_run=args.dry_run
        )
    except (DataError, ValueError, Unreachable) as exc:
        return report_failure(exc, settings)
    report = markdown(settings.model_name, settings.model_alias, version, args.run_id, decision)
    if args.summary_file:
        with args.summary_file.open("a") as fh:
            fh.write(report)
    sys.stdout.write(f"{settings.model_name} v{version}: {decision.summary()}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
