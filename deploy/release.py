"""The release: the chart installed with the target's values, our images and the user's files;
then waiting for it to come up, one component at a time, with a first training if needed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from deploy import objects
from deploy.context import Ctx
from deploy.helm import merge_values
from deploy.options import Image, load_values
from deploy.shell import StepFailed
from deploy.training import run_training

# Where the chart takes each image from: <values key>.image.{repository,tag}.
IMAGE_VALUES_KEY = {
    "mlflow": "mlflow",
    "train": "training",
    "serve": "serving",
    "rollout": "rollout",
}


def image_values(images: list[Image]) -> dict[str, Any]:
    """The chart's image values for what we built: the registry (global) and each component's
    repository and tag. The pull policy stays the values file's business (kind: the images are
    on the node already)."""
    values: dict[str, Any] = {}
    registries = {image.registry for image in images}
    if len(registries) == 1 and (registry := registries.pop()):
        values["image"] = {"registry": registry}
    for image in images:
        chosen = {"repository": image.name, "tag": image.tag}
        if image.digest:
            chosen["digest"] = image.digest
        values[IMAGE_VALUES_KEY[image.component]] = {"image": chosen}
    return values


def release_values(ctx: Ctx) -> dict[str, Any]:
    """The target's values file, then the images we built and what the cluster dictates (the API
    server's endpoints), then the user's files (they win)."""
    opts = ctx.opts
    layers = [load_values(opts.env_values)]
    if ctx.state.images.built:
        layers.append(image_values(ctx.state.images.built))
    if ctx.state.release.cluster_values:
        layers.append(ctx.state.release.cluster_values)
    layers.extend(load_values(path) for path in opts.values)
    return merge_values(*layers)


def mlflow_start_seconds(values: Mapping[str, Any]) -> int:
    """The chart's ``mlkube.mlflow.startSeconds``: the longest a first install may take until
    MLflow answers (image pull 300 s, the database wait, migration 120 s, startup probe 300 s)."""
    mlflow = values.get("mlflow") or {}
    if not mlflow.get("enabled", True):
        return 300
    backend = mlflow.get("backend") or {}
    if backend.get("type", "sqlite") == "sqlite":
        return 300 + 120 + 300
    return 300 + int(backend.get("waitSeconds", 300)) + 120 + 300


def webhook_hook_deadline(values: Mapping[str, Any]) -> int:
    """activeDeadlineSeconds of the chart's webhook registration hook (a chart test checks the
    two agree): MLflow's longest first start plus 120 s for the hook's own pull and last try."""
    return mlflow_start_seconds(values) + 120


def helm_timeout(ctx: Ctx, values: Mapping[str, Any]) -> int:
    """Helm waits for each hook up to its --timeout: never less than the webhook hook's own
    deadline (plus a minute), or Helm would give up on a first install the hook still wins."""
    return max(int(ctx.opts.timeout), webhook_hook_deadline(values) + 60)


def install_release(ctx: Ctx) -> None:
    opts = ctx.opts
    if not opts.chart.is_dir():
        raise StepFailed(f"chart {opts.chart} not found")
    values = release_values(ctx)
    ctx.state.release.values = values
    ctx.console.info(
        "values: "
        + ", ".join(
            str(p.relative_to(opts.repo)) if p.is_relative_to(opts.repo) else str(p)
            for p in opts.values_files
        )
    )
    # Neither `--wait` nor `--atomic`/`--rollback-on-failure`, on kind and EKS alike: the serving
    # pods stay unready until a model exists, and the first model comes from the chart's
    # post-install training hook. Helm 4's --rollback-on-failure implies waiting for every
    # resource to be ready before the post-install hooks run, so a first install would wait for
    # a model that only the hook can make, time out, and be rolled back (uninstalled). The next
    # steps wait instead, one component at a time, with their own progress and hints; a failed
    # release stays for you to inspect (`helm rollback` goes back by hand).
    timeout = helm_timeout(ctx, values)
    ctx.console.info(
        "Helm also runs the chart's hooks (webhook registration; on a first install, the first "
        f"training) and waits for them: a few minutes, at most {timeout}s each"
    )
    revision = ctx.helm.upgrade_install(
        opts.release,
        opts.chart,
        values,
        namespace=opts.namespace,
        context=ctx.context,
        wait=False,
        atomic=False,
        timeout=f"{timeout}s",
    )
    ctx.state.release.revision = revision.revision
    ctx.console.info(f"release {revision.release} revision {revision.revision}: {revision.status}")


def rollout_status(ctx: Ctx, deployment: str) -> None:
    ctx.kubectl(
        "rollout",
        "status",
        f"deployment/{deployment}",
        "-n",
        ctx.opts.namespace,
        f"--timeout={int(ctx.opts.timeout)}s",
    )
    ctx.console.info(f"deployment/{deployment} rolled out")


def wait_mlflow(ctx: Ctx) -> None:
    found = objects.items(ctx, "deployment", objects.release_selector(ctx.opts.release, "mlflow"))
    if not found:
        ctx.console.info("no MLflow Deployment in the release (an external MLflow?): skipped")
        return
    rollout_status(ctx, objects.name_of(found[0]))


def first_run_hook(values: Mapping[str, Any]) -> bool:
    """Whether the chart trains once itself, in its post-install hook (on by default)."""
    training = values.get("training") or {}
    return bool(
        training.get("enabled", True) and (training.get("firstRun") or {}).get("enabled", True)
    )


def first_training(ctx: Ctx) -> None:
    if ctx.state.release.revision == 1 and first_run_hook(ctx.state.release.values):
        # Its name follows the chart's fullname (and any override): found, not guessed.
        hooks = [
            objects.name_of(job)
            for job in objects.items(
                ctx, "job", objects.release_selector(ctx.opts.release, "training")
            )
            if objects.name_of(job).endswith("-training-first-run")
        ]
        job = (
            f"job/{hooks[0]}"
            if hooks
            else f"-l {objects.release_selector(ctx.opts.release, 'training')}"
        )
        ctx.console.info(
            "the chart's post-install hook trained once already: skipped "
            f"(kubectl --context {ctx.context} -n {ctx.opts.namespace} logs {job})"
        )
        return
    serving = objects.serving_deployment(ctx)
    if int(serving.get("status", {}).get("availableReplicas", 0) or 0) > 0:
        ctx.console.info(
            f"a model is already served: skipped (make train{ctx.make_env} trains again)"
        )
        return
    run_training(ctx)


def wait_release(ctx: Ctx) -> None:
    deployments = objects.items(ctx, "deployment", objects.release_selector(ctx.opts.release))
    if not deployments:
        raise StepFailed(f"release {ctx.opts.release} has no Deployment in {ctx.opts.namespace}")
    for dep in sorted(deployments, key=objects.name_of):
        rollout_status(ctx, objects.name_of(dep))
