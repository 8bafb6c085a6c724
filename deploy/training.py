"""Training on the cluster: a Job made from the chart's CronJob, marked as started by hand, its
log streamed and its end awaited (``make train``, and the first training of ``make deploy``)."""

from __future__ import annotations

import json
import time
from typing import Any

from deploy import objects
from deploy.context import Ctx, wait_for
from deploy.shell import StepFailed

# Read by the training job (jobs.settings.TrainSettings): `cron` on the CronJob, `manual` here.
ENV_TRAIN_TRIGGER = "TRAIN_TRIGGER"


def mark_manual(job: dict[str, Any]) -> dict[str, Any]:
    """The Job ``kubectl create job --from=cronjob/...`` would create, with ``TRAIN_TRIGGER`` set
    to ``manual`` on its training container(s): a copy of the CronJob's pod says ``cron``, and
    the run's tags would call a run started by hand a scheduled one."""
    containers = job.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []
    training = [
        c for c in containers if any(e.get("name") == ENV_TRAIN_TRIGGER for e in c.get("env") or [])
    ] or [c for c in containers if "jobs.train" in (c.get("command") or [])]
    if not training:
        raise StepFailed(
            "the training CronJob's pod has no container that runs `python -m jobs.train` "
            f"(none sets {ENV_TRAIN_TRIGGER}): is it the mlkube chart's?"
        )
    for container in training:
        env = [e for e in container.get("env") or [] if e.get("name") != ENV_TRAIN_TRIGGER]
        container["env"] = [*env, {"name": ENV_TRAIN_TRIGGER, "value": "manual"}]
    return job


def run_training(ctx: Ctx) -> None:
    """A Job made from the CronJob (same image, env and limits; ``TRAIN_TRIGGER=manual``), its
    logs streamed, its end awaited."""
    ns = ctx.opts.namespace
    cronjob = objects.training_cronjob(ctx)
    job = f"{cronjob[:40]}-manual-{time.strftime('%Y%m%d%H%M%S', time.gmtime(ctx.now()))}"
    # kubectl builds the Job as `create job --from` does (owner reference to the CronJob, its
    # labels and annotations); we change the trigger, then create it.
    dry_run = ["create", "job", job, f"--from=cronjob/{cronjob}", "-n", ns, "--dry-run=client"]
    built = ctx.kubectl(*dry_run, "-o", "json").stdout
    manifest = objects.json_object(built, f"kubectl {' '.join(dry_run)}")
    ctx.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(mark_manual(manifest)))
    ctx.state.release.training_job = job
    ctx.console.info(
        f"job/{job} created from cronjob/{cronjob} ({ENV_TRAIN_TRIGGER}=manual); its log follows"
    )
    timeout = int(ctx.opts.timeout)
    # `kubectl logs -f --pod-running-timeout` gives up at once on a pod in ContainerCreating
    # ("is waiting to start"): wait until the container runs (or already ended), then follow.
    wait_for(
        ctx,
        f"the pod of job/{job} to start",
        lambda: _pod_started(ctx, job),
        timeout=timeout,
        interval=1.0,
    )
    ctx.kubectl("logs", "-f", f"job/{job}", "-n", ns, capture=False, check=False)

    def finished() -> str | None:
        status = objects.get_json(ctx, "job", job, "-n", ns).get("status", {})
        if int(status.get("succeeded", 0)) >= 1:
            return "succeeded"
        for cond in status.get("conditions") or []:
            if cond.get("type") == "Failed" and cond.get("status") == "True":
                raise StepFailed(
                    f"training job/{job} failed: {cond.get('reason')}: {cond.get('message')}",
                    look=f"kubectl --context {ctx.context} -n {ns} logs job/{job}; "
                    f"kubectl --context {ctx.context} -n {ns} describe job/{job}",
                )
        return None

    wait_for(ctx, f"job/{job} to finish", finished, timeout=timeout)
    ctx.console.info(f"job/{job} succeeded: {_verdict(ctx, job)}")


def _pod_started(ctx: Ctx, job: str) -> str | None:
    """The phase of the Job's pod once its container runs or ended, else None."""
    pods = objects.get_json(ctx, "pods", "-n", ctx.opts.namespace, "-l", f"job-name={job}")
    for pod in pods.get("items") or []:
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Running", "Succeeded", "Failed"):
            return str(phase)
    return None


def _verdict(ctx: Ctx, job: str) -> str:
    """The training's last line (``run <id>: <model> v<N> PROMOTED (...)`` or ``... skipped``):
    whatever the log stream showed, the user sees whether the model was promoted."""
    out = ctx.kubectl("logs", f"job/{job}", "-n", ctx.opts.namespace, "--tail=200", check=False)
    lines = [line for line in out.stdout.splitlines() if line.startswith("run ")]
    return lines[-1] if lines else f"no verdict in its log (kubectl logs job/{job})"
