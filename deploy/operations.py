"""Working with a deployment: the closing summary of ``make deploy``, the MLflow UI through a
port-forward (``make ui``), and what is deployed and how it is doing (``make status``)."""

from __future__ import annotations

from deploy import objects
from deploy.context import Ctx
from deploy.ingress import curl_example
from deploy.shell import StepFailed
from mlkube.core.deployment import pinned_version
from mlkube.core.record import RolloutRecord


def summary(ctx: Ctx) -> None:
    env = ctx.make_env
    # `make train` trains on the cluster only when ENV is on its command line, kind included.
    train = env if "ENV=" in env else f" ENV={ctx.opts.env}{env}"
    url = ctx.state.ingress.url or "<ingress address>"
    ctx.console.text(
        f"\nmlkube is up in namespace {ctx.opts.namespace} (kube-context {ctx.context}).\n"
        f"  MLflow UI:    make ui{env}          then open http://127.0.0.1:{ctx.opts.port}\n"
        f"  Predict:      make predict{env}\n"
        f"                {curl_example(url, ctx.state.ingress.headers)}\n"
        f"  Train again:  make train{train}\n"
        f"  Status:       make status{env}\n"
        f"  Remove:       make destroy{env}"
    )


def port_forward_ui(ctx: Ctx) -> None:
    service, remote = objects.mlflow_service(ctx)
    port = ctx.opts.port
    ctx.console.info(f"MLflow UI on http://127.0.0.1:{port}  (Ctrl-C stops the port-forward)")
    try:
        ctx.kubectl(
            "port-forward",
            "-n",
            ctx.opts.namespace,
            "--address",
            "127.0.0.1",
            f"svc/{service}",
            f"{port}:{remote}",
            capture=False,
        )
    except KeyboardInterrupt:
        ctx.console.info("stopped")


def show_status(ctx: Ctx) -> None:
    opts = ctx.opts
    revision = ctx.helm.status(opts.release, namespace=opts.namespace, context=ctx.context)
    if revision is None:
        raise StepFailed(
            f"release {opts.release} is not installed in {opts.namespace}: make deploy"
            f"{ctx.make_env}"
        )
    ctx.console.info(f"release {opts.release} revision {revision.revision}: {revision.status}")
    ctx.kubectl(
        "get",
        "deployment,statefulset,cronjob,job,pod,service,ingress,pvc",
        "-n",
        opts.namespace,
        "-l",
        objects.release_selector(opts.release),
        "-o",
        "wide",
        capture=False,
    )
    serving = objects.serving_deployment(ctx)
    status = serving.get("status", {})
    ctx.console.info(
        f"serving: model version {pinned_version(serving) or '(alias, not pinned yet)'}, "
        f"{status.get('readyReplicas', 0)}/{serving.get('spec', {}).get('replicas', 1)} ready"
    )
    ctx.console.info(f"rollout: {RolloutRecord.of(serving).describe()}")
    ingresses = objects.items(ctx, "ingress", objects.release_selector(opts.release))
    address = objects.ingress_address(ingresses[0]) if ingresses else None
    ctx.console.info(f"ingress: {address or 'no address yet'}")
