"""``mlkube <command>`` (and ``python -m mlkube <command>``): the one command for what a person
runs; the Makefile's targets call it.

It only dispatches: each command's component (``embedded``, ``deploy``, ``jobs``) is imported
when that command runs, inside the function that runs it. This module is a program, not part of
the core: nothing imports it, and no image holds it (tests/unit/core/test_layers.py,
tests/containers)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

USAGE = """\
usage: mlkube COMMAND [flags]      (mlkube COMMAND --help lists its flags)

On this machine:
  up         MLflow, one training run and the model server, without Kubernetes (make up)
  train      one training run against MLFLOW_TRACKING_URI; with --env, on the cluster (make train)

On Kubernetes (--env kind, the default; local: hack/cluster; eks: the current context):
  deploy     cluster, images, Helm release, first training (make deploy)
  images     build the mlkube-{mlflow,train,serve,rollout} images (make images)
  status     the release, its pods, the model version each replica serves (make status)
  ui         port-forward to the MLflow UI (make ui)
  predict    a prediction through the Ingress (make predict)
  e2e        the end-to-end check of the deployment, under load (make e2e)
  destroy    delete the kind cluster; stop the local one; uninstall from EKS (make destroy)
  check-tag  check a release tag against the chart's appVersion
"""

# The deploy driver's commands: `mlkube <command> ...` is `python -m deploy <command> ...`.
DEPLOY_COMMANDS = ("deploy", "images", "status", "ui", "predict", "e2e", "destroy", "check-tag")


def up(argv: list[str]) -> int:
    from embedded.up import main as run

    return run(argv)


def deploy(argv: list[str]) -> int:
    from deploy.cli import main as run

    return run(argv)


def train(argv: list[str]) -> int:
    """On the cluster when ``--env`` names one (the deploy driver makes a Job from the CronJob),
    else here: ``python -m jobs.train`` with the flags that follow."""
    if any(arg == "--env" or arg.startswith("--env=") for arg in argv[1:]):
        return deploy(argv)
    from jobs.train import main as run

    return run(argv[1:])


COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "up": up,
    "train": train,
    **dict.fromkeys(DEPLOY_COMMANDS, deploy),
}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        (sys.stdout if args else sys.stderr).write(USAGE)
        return 0 if args else 2
    command = COMMANDS.get(args[0])
    if command is None:
        sys.stderr.write(f"{USAGE}mlkube: error: unknown command {args[0]!r}\n")
        return 2
    return command(args)


if __name__ == "__main__":
    sys.exit(main())
