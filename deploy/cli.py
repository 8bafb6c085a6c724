"""``mlkube <command>`` (or ``python -m deploy <command>``): what ``make deploy``, ``make ui`` & co.
run."""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from deploy.context import Ctx
from deploy.e2e import steps as e2e
from deploy.e2e.diagnostics import dump_diagnostics
from deploy.helm import Helm, PyHelm3
from deploy.options import (
    DEFAULT_BASE_IMAGE,
    ENGINES,
    ENVS,
    LOCAL_BASE_IMAGE,
    Options,
    check_release_tag,
)
from deploy.plans import PLANNERS
from deploy.runner import run_steps
from deploy.shell import Commands, StepFailed, SubprocessCommands
from mlkube.core.console import Console

TOOLS = ("docker", "podman", "kind", "kubectl", "helm", "pgrep")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def default_repo() -> Path:
    """The checkout we run from: the working directory when it holds the chart, else ours."""
    cwd = Path.cwd()
    if (cwd / "charts" / "mlkube").is_dir():
        return cwd
    return Path(__file__).resolve().parents[1]


def find_tools(repo: Path, path: str | None = None) -> dict[str, str | None]:
    """The user's own tools on PATH first; ``./bin`` (``make tools``) as the fallback. The
    Makefile puts ./bin first on PATH, so it is skipped in the first pass."""
    local = (repo / "bin").resolve()
    dirs = [
        d
        for d in (path if path is not None else os.environ.get("PATH", "")).split(os.pathsep)
        if d and Path(d).resolve() != local
    ]
    found: dict[str, str | None] = {}
    for name in TOOLS:
        found[name] = shutil.which(name, path=os.pathsep.join(dirs))
        if found[name] is None and os.access(local / name, os.X_OK):
            found[name] = str(local / name)
    found["python"] = sys.executable
    return found


def _dns_label(flag: str, limit: int) -> Callable[[str], str]:
    def check(value: str) -> str:
        if len(value) > limit or not DNS_LABEL.match(value):
            raise argparse.ArgumentTypeError(
                f"{flag} {value!r}: lower-case letters, digits and '-', at most {limit} characters"
            )
        return value

    return check


def _port(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise argparse.ArgumentTypeError(f"--port {value!r}: a number from 1 to 65535")
    return int(value)


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"--timeout {value!r}: a positive number of seconds")
    return seconds


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--env",
        choices=ENVS,
        default="kind",
        help="kind (a local kind cluster, the default), local (the host-process cluster of "
        "hack/cluster, `make cluster-up`) or eks (the current context)",
    )
    common.add_argument(
        "--cluster",
        default="mlkube",
        type=_dns_label("--cluster", 40),
        help="kind cluster name (make: KIND_CLUSTER)",
    )
    common.add_argument(
        "--namespace",
        default="mlkube",
        type=_dns_label("--namespace", 63),
        help="namespace of the release (make: NAMESPACE)",
    )
    common.add_argument(
        "--release",
        default="mlkube",
        type=_dns_label("--release", 53),
        help="Helm release name (make: RELEASE)",
    )
    common.add_argument(
        "--timeout",
        type=_seconds,
        default=600.0,
        help="seconds to wait for each rollout or job (default 600)",
    )
    common.add_argument("--repo", type=Path, default=None, help=argparse.SUPPRESS)

    images = argparse.ArgumentParser(add_help=False)
    images.add_argument(
        "--tag",
        default="",
        help="image tag (make: IMG_TAG; default: the chart's appVersion, plus the "
        "image id on kind so a rebuilt image rolls its pods)",
    )
    images.add_argument(
        "--registry",
        default="",
        help="registry the cluster pulls from; required with --env eks "
        "(make: IMAGE_REGISTRY, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com)",
    )
    images.add_argument(
        "--platform",
        default="",
        help="build for this platform with buildx and push (e.g. linux/arm64)",
    )
    images.add_argument(
        "--engine",
        choices=("auto", *ENGINES),
        default=os.environ.get("CONTAINER_ENGINE") or "auto",
        help="container engine that builds the images (make: CONTAINER_ENGINE; default auto: "
        "docker if its daemon answers, else podman)",
    )
    images.add_argument(
        "--base-image",
        default="",
        help="the Python base image (make: BASE_IMAGE; default: "
        f"{DEFAULT_BASE_IMAGE}, or {LOCAL_BASE_IMAGE} built by images/local-base.sh "
        "when that cannot be pulled)",
    )

    parser = argparse.ArgumentParser(
        prog="mlkube",
        description="Deploy mlkube to kind or EKS and work with the deployment.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    deploy = sub.add_parser(
        "deploy", parents=[common, images], help="create/upgrade everything (make deploy)"
    )
    deploy.add_argument(
        "--values",
        action="append",
        type=Path,
        default=[],
        metavar="FILE",
        help="your values file, applied last (make: VALUES); repeatable",
    )
    deploy.add_argument(
        "--no-build",
        action="store_true",
        help="do not build images: use the ones tagged with --tag/appVersion",
    )
    deploy.add_argument("--no-train", action="store_true", help="skip the first training")
    sub.add_parser("images", parents=[common, images], help="build the images (make images)")
    destroy = sub.add_parser("destroy", parents=[common], help="remove it (make destroy)")
    destroy.add_argument(
        "--yes", action="store_true", help="confirm uninstalling from EKS (make: YES=1)"
    )
    ui = sub.add_parser("ui", parents=[common], help="port-forward to the MLflow UI (make ui)")
    ui.add_argument("--port", type=_port, default=5000, help="local port (make: MLFLOW_PORT)")
    sub.add_parser("predict", parents=[common], help="a prediction through the Ingress")
    sub.add_parser("status", parents=[common], help="what is deployed and how it is doing")
    sub.add_parser("train", parents=[common], help="one training run on the cluster")
    test = sub.add_parser("e2e", parents=[common], help="end-to-end smoke test (make e2e)")
    test.add_argument(
        "--artifacts",
        type=Path,
        default=None,
        help="directory for the diagnostics on failure (default .mlkube/e2e-artifacts)",
    )

    check = sub.add_parser("check-tag", help="check a release tag against the chart's appVersion")
    check.add_argument("--tag", required=True, help="the git tag, e.g. v0.1.0")
    check.add_argument("--repo", type=Path, default=None, help=argparse.SUPPRESS)
    return parser


def options_from(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Options:
    repo = (args.repo or default_repo()).resolve()
    registry = getattr(args, "registry", "")
    build = not getattr(args, "no_build", False)
    if args.command in ("deploy", "images") and args.env == "eks" and build and not registry:
        parser.error(
            "--registry (IMAGE_REGISTRY) is required with --env eks: the registry EKS "
            "pulls the images from, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com"
        )
    if getattr(args, "platform", "") and not registry:
        parser.error(
            "--platform (PLATFORM) builds with buildx and pushes: it needs --registry "
            "(IMAGE_REGISTRY) to push to"
        )
    values = tuple(getattr(args, "values", []))
    for path in values:
        if not path.is_file():
            parser.error(f"--values {path}: no such file (make: VALUES)")
    return Options(
        repo=repo,
        env=args.env,
        cluster=args.cluster,
        namespace=args.namespace,
        release=args.release,
        tag=getattr(args, "tag", ""),
        registry=registry,
        values=tuple(p.resolve() for p in values),
        build=build,
        train=not getattr(args, "no_train", False),
        timeout=args.timeout,
        platform=getattr(args, "platform", ""),
        engine="" if getattr(args, "engine", "auto") == "auto" else args.engine,
        base_image=getattr(args, "base_image", ""),
        port=getattr(args, "port", 5000),
        yes=getattr(args, "yes", False),
        artifacts=getattr(args, "artifacts", None),
    )


def main(
    argv: Sequence[str] | None = None,
    *,
    cmds: Commands | None = None,
    helm: Helm | None = None,
    tools: Mapping[str, str | None] | None = None,
) -> int:
    # pyhelm3 logs each failed helm command; the step's failure message already says it.
    logging.getLogger("pyhelm3").setLevel(logging.CRITICAL)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "check-tag":
        chart = (args.repo or default_repo()).resolve() / "charts" / "mlkube"
        try:
            version = check_release_tag(args.tag, chart)
        except (ValueError, FileNotFoundError) as exc:
            sys.stderr.write(f"error: {exc}\n")
            return 1
        sys.stdout.write(f"tag {args.tag} matches the chart's appVersion {version}\n")
        return 0
    opts = options_from(args, parser)
    found = dict(tools) if tools is not None else find_tools(opts.repo)
    ctx = Ctx(
        opts=opts,
        cmds=cmds or SubprocessCommands(log_dir=opts.repo / ".mlkube" / "logs"),
        helm=helm or PyHelm3(found.get("helm") or "helm"),
        tools=found,
        console=Console(),
    )
    if opts.env == "local":
        # The local cluster's own kubeconfig (`cluster.py env --json` says where), for kubectl,
        # helm and port-forwards alike, as `export KUBECONFIG=...` would do by hand.
        try:
            os.environ["KUBECONFIG"] = str(ctx.local_cluster().kubeconfig)
        except StepFailed as exc:
            sys.stderr.write(f"error: the local cluster: {exc}\n")
            return 1
    steps = PLANNERS[args.command](opts)
    if args.command == "e2e":
        try:
            code = run_steps(steps, ctx, on_failure=dump_diagnostics)
        finally:
            e2e.run_cleanups(ctx)
        if code == 0:
            ctx.console.text("\ne2e: passed")
        return code
    return run_steps(steps, ctx)
