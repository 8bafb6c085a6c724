"""``python -m rollout``: run the operator, or register its webhook in MLflow.

    python -m rollout [--kubeconfig PATH] [--namespace NS | --all-namespaces] [--verbose]
    python -m rollout register-webhook --url http://mlkube-rollout.mlkube:8000/webhook [--test]

Flags override the env vars of :class:`rollout.settings.OperatorSettings`.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import sys
from typing import Any, Final
from urllib.parse import urlparse

from pydantic import ValidationError

from mlkube.core.backoff import Unreachable
from mlkube.core.registry import apply_client_defaults
from mlkube.core.tracking import wait_for_tracking_server
from rollout.settings import OperatorSettings

EXIT_BAD_INPUT = 2
EXIT_UNREACHABLE = 1
WEBHOOK_EVENT: Final = "model_version_alias.created"
DEFAULT_WEBHOOK_NAME = "mlkube-rollout"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m rollout",
        description="Roll serving Deployments labelled mlkube.io/model-name when the MLflow "
        "alias they follow moves (env: MLFLOW_TRACKING_URI, ROLLOUT_POLL_SECONDS, "
        "ROLLOUT_WEBHOOK_SECRET, ROLLOUT_HTTP_PORT, ROLLOUT_NAMESPACE, ROLLOUT_CLUSTER_WIDE, "
        "LOG_LEVEL).",
    )
    parser.add_argument(
        "--kubeconfig",
        metavar="PATH",
        help="kubeconfig to use (default: in-cluster, else $KUBECONFIG or ~/.kube/config)",
    )
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        metavar="NS",
        help="namespace to watch (env ROLLOUT_NAMESPACE; default: the pod's "
        "or the kubeconfig context's)",
    )
    scope.add_argument(
        "-A",
        "--all-namespaces",
        action="store_true",
        help="watch every namespace (env ROLLOUT_CLUSTER_WIDE=true)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging, kopf's too")
    parser.add_argument(
        "--liveness",
        metavar="URL",
        default="http://0.0.0.0:8080/healthz",
        help="kopf's liveness endpoint (default %(default)s; '' disables)",
    )
    parser.add_argument(
        "--poll-seconds", type=float, metavar="S", help="env ROLLOUT_POLL_SECONDS (default 15)"
    )
    parser.add_argument(
        "--http-port",
        type=int,
        metavar="PORT",
        help="port of /webhook and /metrics (env ROLLOUT_HTTP_PORT, default 8000)",
    )

    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    register = commands.add_parser(
        "register-webhook",
        help="create or update the MLflow webhook that calls this operator",
        description="Create (or update, by name) an MLflow webhook for model_version_alias."
        "created, signed with ROLLOUT_WEBHOOK_SECRET. The MLflow server refuses http:// and "
        "private/cluster-internal URLs unless it runs with MLFLOW_WEBHOOK_ALLOWED_SCHEMES=http,"
        "https and MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS=true.",
    )
    register.add_argument(
        "--url",
        required=True,
        help="the operator's webhook URL, e.g. http://mlkube-rollout.mlkube.svc:8000/webhook",
    )
    register.add_argument(
        "--name", default=DEFAULT_WEBHOOK_NAME, help="webhook name in MLflow (default %(default)s)"
    )
    register.add_argument("--tracking-uri", help="MLflow server (env MLFLOW_TRACKING_URI)")
    register.add_argument(
        "--wait",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="how long to wait for MLflow to answer first, retrying with backoff (default "
        "%(default)s: as a post-install hook it starts beside a server that is still starting)",
    )
    register.add_argument(
        "--test",
        action="store_true",
        help="send MLflow's test delivery and check the operator accepts it",
    )
    return parser


def _fail(code: int, message: str) -> int:
    sys.stderr.write(f"error: {message}\n")
    return code


def _settings(overrides: dict[str, Any]) -> OperatorSettings:
    return OperatorSettings(**{k: v for k, v in overrides.items() if v is not None})


def _validation_message(exc: ValidationError, flags: dict[str, str]) -> str:
    parts = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        info = OperatorSettings.model_fields.get(field)
        env = info.alias if info is not None and info.alias else field
        where = f"{flags[field]} / {env}" if field in flags else env or "settings"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def configure_logging(level: str, verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else getattr(logging, level),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not verbose:
        # kopf logs every handled watch event at INFO: keep its warnings and errors only.
        logging.getLogger("kopf").setLevel(logging.WARNING)
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def run(args: argparse.Namespace) -> int:
    flags = {
        "namespace": "--namespace",
        "cluster_wide": "--all-namespaces",
        "poll_seconds": "--poll-seconds",
        "http_port": "--http-port",
    }
    overrides: dict[str, Any] = {
        "poll_seconds": args.poll_seconds,
        "http_port": args.http_port,
    }
    if args.namespace:
        overrides.update(namespace=args.namespace, cluster_wide=False)
    if args.all_namespaces:
        overrides.update(namespace="", cluster_wide=True)
    try:
        settings = _settings(overrides)
    except ValidationError as exc:
        return _fail(EXIT_BAD_INPUT, _validation_message(exc, flags))
    configure_logging(settings.log_level, args.verbose)
    apply_client_defaults()

    from kubernetes.config.config_exception import ConfigException

    from rollout.app import Operator

    try:
        operator = Operator(settings, kubeconfig=args.kubeconfig, liveness=args.liveness or None)
    except ConfigException as exc:
        return _fail(EXIT_BAD_INPUT, f"no Kubernetes credentials: {exc} (use --kubeconfig PATH)")
    try:
        asyncio.run(operator.run())
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return _fail(
                EXIT_BAD_INPUT,
                f"port {settings.http_port} is in use: choose another "
                "with --http-port / ROLLOUT_HTTP_PORT",
            )
        raise
    return 0


def register_webhook(args: argparse.Namespace) -> int:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        settings = _settings({"tracking_uri": args.tracking_uri})
    except ValidationError as exc:
        return _fail(EXIT_BAD_INPUT, _validation_message(exc, {"tracking_uri": "--tracking-uri"}))
    secret = settings.webhook_secret.get_secret_value()
    if not secret:
        return _fail(
            EXIT_BAD_INPUT,
            "ROLLOUT_WEBHOOK_SECRET is empty: set it to the secret "
            "the operator runs with, so MLflow signs what the operator checks",
        )
    url = urlparse(args.url)
    if url.scheme not in ("http", "https") or not url.hostname:
        return _fail(EXIT_BAD_INPUT, f"--url {args.url!r}: expected http(s)://host[:port]/webhook")
    apply_client_defaults()
    try:
        wait_for_tracking_server(settings.tracking_uri, timeout=max(args.wait, 0.0))
    except Unreachable as exc:
        return _fail(EXIT_UNREACHABLE, str(exc))

    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    description = "mlkube rollout operator: roll serving Deployments when an alias moves"
    try:
        existing = None
        page_token = None
        while existing is None:
            page = client.list_webhooks(max_results=100, page_token=page_token)
            existing = next((w for w in page if w.name == args.name), None)
            page_token = page.token
            if not page_token:
                break
        if existing is None:
            webhook = client.create_webhook(
                name=args.name,
                url=args.url,
                events=[WEBHOOK_EVENT],
                description=description,
                secret=secret,
                status="ACTIVE",
            )
            verb = "created"
        else:
            webhook = client.update_webhook(
                existing.webhook_id,
                url=args.url,
                events=[WEBHOOK_EVENT],
                description=description,
                secret=secret,
                status="ACTIVE",
            )
            verb = "updated"
    except MlflowException as exc:
        status: int = exc.get_http_status_code()  # type: ignore[no-untyped-call]
        if 400 <= status < 500:
            hint = ""
            if "scheme" in str(exc) or "non-public" in str(exc):
                hint = (
                    " (the MLflow server refuses http:// or private URLs unless it runs "
                    "with MLFLOW_WEBHOOK_ALLOWED_SCHEMES=http,https and "
                    "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS=true)"
                )
            return _fail(EXIT_BAD_INPUT, f"MLflow refused the webhook: {exc.message}{hint}")
        return _fail(EXIT_UNREACHABLE, f"MLflow at {settings.tracking_uri}: {exc.message}")
    except OSError as exc:
        return _fail(EXIT_UNREACHABLE, f"MLflow at {settings.tracking_uri} unreachable: {exc}")
    sys.stdout.write(
        f"{verb} webhook {webhook.name} ({webhook.webhook_id}): {WEBHOOK_EVENT} -> {webhook.url}\n"
    )
    if args.test:
        result = client.test_webhook(webhook.webhook_id)
        if not result.success:
            detail = (
                result.error_message or f"HTTP {result.response_status}: {result.response_body}"
            )
            return _fail(EXIT_UNREACHABLE, f"test delivery failed: {detail}")
        sys.stdout.write(f"test delivery accepted (HTTP {result.response_status})\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "register-webhook":
        return register_webhook(args)
    return run(args)
