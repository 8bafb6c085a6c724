"""What the e2e test dumps when a step fails: ``kubectl get``/``describe`` of everything, every
pod's logs (and its previous container's, when it restarted), and the load's report; on the
console and into the artifacts directory."""

from __future__ import annotations

from pathlib import Path

from deploy.context import Ctx
from deploy.options import Options
from deploy.runner import Step
from deploy.shell import CommandError, StepFailed


def diagnostics_commands(ctx: Ctx, pods: list[str]) -> list[tuple[str, list[str]]]:
    ns = ctx.opts.namespace
    out: list[tuple[str, list[str]]] = [
        (
            "get",
            [
                "get",
                "all,ingress,cronjob,job,pvc,networkpolicy,gateway,httproute",
                "-n",
                ns,
                "-o",
                "wide",
            ],
        ),
        ("events", ["get", "events", "-n", ns, "--sort-by=.lastTimestamp"]),
        ("describe", ["describe", "all,ingress,cronjob,pvc,networkpolicy", "-n", ns]),
    ]
    for pod in pods:
        out.append(
            (
                f"logs-{pod}",
                ["logs", "-n", ns, f"pod/{pod}", "--all-containers", "--prefix", "--tail=400"],
            )
        )
        out.append(
            (
                f"logs-previous-{pod}",
                [
                    "logs",
                    "-n",
                    ns,
                    f"pod/{pod}",
                    "--all-containers",
                    "--prefix",
                    "--previous",
                    "--tail=200",
                ],
            )
        )
    return out


def dump_diagnostics(ctx: Ctx, step: Step) -> None:
    directory = artifacts_dir(ctx.opts)
    directory.mkdir(parents=True, exist_ok=True)
    try:
        pods = ctx.kubectl(
            "get", "pods", "-n", ctx.opts.namespace, "-o", "name", check=False
        ).stdout.split()
    except StepFailed:
        pods = []
    ctx.console.text(f"\n---- diagnostics after the failed step '{step.title}' ----")
    for name, args in diagnostics_commands(ctx, [p.split("/", 1)[-1] for p in pods]):
        try:
            result = ctx.kubectl(*args, check=False)
        except (StepFailed, CommandError) as exc:
            text = str(exc)
        else:
            text = result.stdout + result.stderr
        if name.startswith("logs-previous-") and "previous terminated container" in text:
            continue  # the usual case: it never restarted
        (directory / f"{name}.txt").write_text(text)
        ctx.console.text(f"---- kubectl {' '.join(args)}\n{text.rstrip()}")
    report = ctx.state.e2e.load
    if report is not None:
        ctx.console.text(f"---- load: {report.line()}\n" + "\n".join(report.errors))
    ctx.console.text(f"---- written to {directory}")


def artifacts_dir(opts: Options) -> Path:
    return opts.artifacts or opts.repo / ".mlkube" / "e2e-artifacts"
