"""Where the release goes: the kind cluster (created when missing), the local cluster of
hack/cluster (started when it does not answer), the EKS kube-context (checked, never guessed), and
taking them down again."""

from __future__ import annotations

import os

from deploy.context import Ctx
from deploy.ingress import our_provider_exists
from deploy.kubectl import cluster_answers
from deploy.options import CLOUD_PROVIDER_KIND_CONTAINER
from deploy.shell import StepFailed

# A cold start of the local cluster builds its binaries from source first (about 40 minutes on
# 2 cores); a warm one takes seconds.
LOCAL_CLUSTER_UP_S = 3 * 3600


def kind_clusters(ctx: Ctx) -> list[str]:
    return ctx.run("kind", "get", "clusters").stdout.split()


def kube_contexts(ctx: Ctx) -> list[str]:
    return ctx.run("kubectl", "config", "get-contexts", "-o", "name").stdout.split()


def ensure_kind_cluster(ctx: Ctx) -> None:
    opts = ctx.opts
    ctx.state.context = opts.kind_context
    if opts.cluster in kind_clusters(ctx):
        ctx.console.info(f"kind cluster {opts.cluster} exists")
        if opts.kind_context not in kube_contexts(ctx):
            ctx.run("kind", "export", "kubeconfig", "--name", opts.cluster)
        return
    if not opts.kind_config.is_file():
        raise StepFailed(f"{opts.kind_config} not found")
    ctx.console.info(f"creating kind cluster {opts.cluster} from {opts.kind_config.name}")
    ctx.run(
        "kind",
        "create",
        "cluster",
        "--name",
        opts.cluster,
        "--config",
        str(opts.kind_config),
        "--wait",
        "180s",
        capture=False,
    )


def local_cluster_answers(ctx: Ctx) -> bool:
    return cluster_answers(ctx.kube, ctx.local_cluster().kubeconfig)


def ensure_local_cluster(ctx: Ctx) -> None:
    """The local cluster (hack/cluster): used when it answers, else started, as kind's is."""
    local = ctx.local_cluster()
    ctx.state.context = local.context
    if local_cluster_answers(ctx):
        ctx.console.info(f"local cluster answers (kubeconfig {local.kubeconfig})")
        return
    if os.geteuid() != 0:
        raise StepFailed(
            "the local cluster is not running, and starting it needs root (it runs containerd, "
            "the kubelet and iptables): sudo make cluster-up, or use ENV=kind"
        )
    ctx.console.info(
        "starting the local cluster (hack/cluster/cluster.py up): seconds when its binaries are "
        "built, else they are built from source first (tens of minutes, once)"
    )
    ctx.cmds.run(
        [ctx.tool("python"), str(ctx.opts.local_cluster_script), "up", "--no-images"],
        capture=False,
        timeout=LOCAL_CLUSTER_UP_S,
    )
    if not local_cluster_answers(ctx):
        raise StepFailed(
            f"the local cluster started but its API does not answer ({local.kubeconfig}; "
            f"logs in {local.logs})"
        )


def destroy_local(ctx: Ctx) -> None:
    ctx.cmds.run([ctx.tool("python"), str(ctx.opts.local_cluster_script), "down"], capture=False)


def resolve_eks_context(ctx: Ctx) -> None:
    current = ctx.run("kubectl", "config", "current-context", check=False)
    name = current.stdout.strip()
    if not current.ok or not name:
        raise StepFailed(
            "no current kube-context: point kubectl at your EKS cluster first "
            "(aws eks update-kubeconfig --name <cluster>)"
        )
    if name.startswith("kind-"):
        raise StepFailed(
            f"ENV=eks refuses the kind context {name!r}: switch to your EKS cluster "
            "(kubectl config use-context <context>, or aws eks update-kubeconfig --name <cluster>)"
        )
    ctx.state.context = name
    reach = ctx.kubectl("get", "--raw", "/readyz", check=False)
    if not reach.ok:
        raise StepFailed(f"the cluster of context {name!r} does not answer: {reach.stderr.strip()}")
    ctx.console.info(f"kube-context {name}")


def use_context(ctx: Ctx) -> None:
    """For the commands that act on an existing deployment."""
    if ctx.opts.env == "kind":
        if ctx.opts.kind_context not in kube_contexts(ctx):
            raise StepFailed(
                f"no kube-context {ctx.opts.kind_context}: is there a kind cluster named "
                f"{ctx.opts.cluster}? `make deploy` creates it (KIND_CLUSTER names it)",
                look=("kind get clusters; " if ctx.tools.get("kind") else "")
                + "kubectl config get-contexts",
            )
        ctx.state.context = ctx.opts.kind_context
        ctx.console.info(f"kube-context {ctx.context}")
    elif ctx.opts.env == "local":
        local = ctx.local_cluster()
        ctx.state.context = local.context
        if not local_cluster_answers(ctx):
            raise StepFailed(
                f"the local cluster does not answer ({local.kubeconfig}): "
                "`make deploy ENV=local` starts it and installs mlkube"
            )
        ctx.console.info(f"kube-context {ctx.context} ({local.kubeconfig})")
    else:
        resolve_eks_context(ctx)


def destroy_kind(ctx: Ctx) -> None:
    opts = ctx.opts
    if opts.cluster in kind_clusters(ctx):
        ctx.run("kind", "delete", "cluster", "--name", opts.cluster, capture=False)
    else:
        ctx.console.info(f"no kind cluster named {opts.cluster}")
    if not our_provider_exists(ctx):
        return
    if kind_clusters(ctx):
        # It serves every kind cluster on this machine; others still need it.
        ctx.console.info(f"kept {CLOUD_PROVIDER_KIND_CONTAINER}: other kind clusters use it")
    else:
        ctx.run("docker", "rm", "-f", CLOUD_PROVIDER_KIND_CONTAINER)
        ctx.console.info(f"removed {CLOUD_PROVIDER_KIND_CONTAINER}")


def destroy_eks(ctx: Ctx) -> None:
    opts = ctx.opts
    if not opts.yes:
        raise StepFailed(
            f"this uninstalls release {opts.release} from namespace {opts.namespace} of "
            f"kube-context {ctx.context}: run `make destroy ENV=eks YES=1` to confirm"
        )
    ctx.helm.uninstall(opts.release, namespace=opts.namespace, context=ctx.context)
    ctx.console.info(
        f"release {opts.release} uninstalled; its data stays for a reinstall: the "
        "PersistentVolumeClaims, the generated Secrets (database password, webhook keys) and "
        f"the namespace (kubectl delete namespace {opts.namespace} removes them)"
    )
