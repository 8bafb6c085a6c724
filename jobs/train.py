"""One training run: data -> bootstrap -> fit -> holdout metrics -> log -> register -> gate.

    python -m jobs.train [--data PATH_OR_URL --target COLUMN] [--classifier ...] [--seed N]

A run identical to the champion (same data, seed, classifier, params and code) is logged but
not registered: one line says so (``--force-register`` registers it anyway).
Exit codes: 0 trained (registered or not, promoted or not), 2 bad input, 1 MLflow unreachable
or run failed.
The flags are parsed before MLflow and scikit-learn are imported (:mod:`jobs.training`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from jobs.cli import FLAGS, add_settings_flags, report_failure, settings_from, setup_logging
from mlkube.core.backoff import Unreachable


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """``--param C=0.5 --param max_iter=200`` -> {"C": 0.5, "max_iter": 200}."""
    params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"--param {pair}: expected NAME=VALUE")
        params[name] = _literal(raw)
    return params


def _literal(raw: str) -> Any:
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(raw.lower(), raw)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlkube-train",
        description="Train a scikit-learn model, log it to MLflow, register it, and promote it "
        "to the alias only if it beats the current champion on the fixed holdout.",
    )
    add_settings_flags(parser, list(FLAGS.values()))
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a classifier hyperparameter, repeatable (e.g. --param C=0.5)",
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--no-promote", action="store_true", help="register but never move the alias"
    )
    group.add_argument(
        "--force-promote", action="store_true", help="move the alias whatever the scores"
    )
    parser.add_argument(
        "--force-register",
        action="store_true",
        help="register a new version even when the run is identical to the champion "
        "(same data, seed, classifier, params and code)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    settings = settings_from(args)
    try:
        params = parse_params(args.param)
    except ValueError as exc:
        return report_failure(exc, settings)

    from jobs.data import DataError
    from jobs.training import train

    try:
        result = train(
            settings,
            params=params,
            promote=not args.no_promote,
            force_promote=args.force_promote,
            force_register=args.force_register,
        )
    except (DataError, ValueError, Unreachable) as exc:
        return report_failure(exc, settings)
    if result.decision is None:
        sys.stdout.write(
            f"run {result.run_id}: {settings.model_name} skipped: {result.registration.reason}; "
            "not registered (--force-register registers it anyway)\n"
        )
    else:
        sys.stdout.write(
            f"run {result.run_id}: {settings.model_name} v{result.version} "
            f"{result.decision.summary()}\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
