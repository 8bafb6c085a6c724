"""The plans: for each command, which steps run in which order, as data.

A planner is a pure function of the :class:`Options`; ``plan_deploy(opts)`` lists the steps of
``make deploy`` and runs nothing. Each step names its action, and the command that shows what
went wrong (filled in by ``Ctx.fmt``)."""

from __future__ import annotations

from collections.abc import Callable

from deploy import cluster, images, ingress, operations, platform, release, training
from deploy.e2e import steps as e2e
from deploy.options import CLOUD_PROVIDER_KIND_CONTAINER, Options
from deploy.runner import Step
from deploy.tools import check_tools

KUBECTL = "kubectl --context {context} -n {ns}"
LOOK_PODS = f"{KUBECTL} get pods -l app.kubernetes.io/instance={{release}}; {KUBECTL} get events"


def tools_step(names: tuple[str, ...], docker_daemon: bool) -> Step:
    return Step("tools", "Checking " + ", ".join(names), check_tools(names, docker_daemon))


ENGINE = Step("engine", "Finding a container engine", images.find_engine)
BUILD = Step("build", "Building images", images.build_images, "{engine} images 'mlkube-*'")
NOT_REBUILT = Step("images", "Images (not rebuilt)", images.planned_images)
EKS_CONTEXT = Step(
    "context", "EKS kube-context", cluster.resolve_eks_context, "kubectl config get-contexts"
)
EKS_ADDONS = Step(
    "addons",
    "EKS add-ons the chart relies on (metrics-server, NetworkPolicy enforcement)",
    platform.eks_addons,
    "kubectl --context {context} -n kube-system get deploy,ds,cm",
)


def plan_deploy(opts: Options) -> list[Step]:
    steps: list[Step] = []
    if opts.env == "kind":
        steps += [
            tools_step(("docker", "kind", "kubectl", "helm"), docker_daemon=True),
            Step(
                "cluster",
                f"kind cluster {opts.cluster}",
                cluster.ensure_kind_cluster,
                "kind get clusters; docker ps --filter label=io.x-k8s.kind.cluster={cluster}",
            ),
            Step(
                "ingress",
                "Ingress through cloud-provider-kind",
                ingress.ensure_kind_ingress,
                f"docker logs {CLOUD_PROVIDER_KIND_CONTAINER}; kubectl --context {{context}} "
                "get ingressclass,gatewayclass",
            ),
        ]
        if opts.build:
            steps += [
                Step("build", "Building images", images.build_images, "docker images 'mlkube-*'"),
                Step(
                    "load",
                    "Loading images into kind",
                    images.load_images,
                    "docker exec {cluster}-control-plane crictl images",
                ),
            ]
        else:
            steps.append(NOT_REBUILT)
    elif opts.env == "local":
        steps += [
            tools_step(("kubectl", "helm"), docker_daemon=False),
            Step(
                "cluster",
                "The local cluster (hack/cluster)",
                cluster.ensure_local_cluster,
                "python3 hack/cluster/cluster.py status; "
                "ls $(python3 hack/cluster/cluster.py env logs)",
            ),
        ]
        if opts.build:
            steps += [
                ENGINE,
                BUILD,
                Step(
                    "load",
                    "Importing images into the local node",
                    images.import_local_images,
                    "python3 hack/cluster/cluster.py images",
                ),
            ]
        else:
            steps.append(NOT_REBUILT)
    else:
        steps += [tools_step(("kubectl", "helm"), docker_daemon=False), EKS_CONTEXT, EKS_ADDONS]
        if opts.build:
            steps += [
                ENGINE,
                BUILD,
                Step(
                    "push",
                    f"Pushing images to {opts.registry}",
                    images.push_images,
                    "{engine} login <registry> (ECR: aws ecr get-login-password | "
                    "{engine} login --username AWS --password-stdin <registry>)",
                ),
            ]
        else:
            steps.append(NOT_REBUILT)
        steps.append(
            Step(
                "namespace",
                f"Namespace {opts.namespace} with the ALB's pod readiness gates",
                platform.alb_readiness_gates,
                "kubectl --context {context} get namespace {ns} --show-labels",
            )
        )
    steps += [
        Step(
            "apiserver",
            "The API server's endpoints (the operator's egress)",
            platform.api_server_endpoints,
            "kubectl --context {context} get " + " ".join(platform.API_SERVER_SLICES),
        ),
        Step(
            "release",
            f"helm upgrade --install {opts.release}",
            release.install_release,
            "helm --kube-context {context} -n {ns} status {release}; " + f"{KUBECTL} get events",
        ),
        Step(
            "mlflow",
            "Waiting for MLflow",
            release.wait_mlflow,
            f"{KUBECTL} describe pods -l app.kubernetes.io/component=mlflow; "
            f"{KUBECTL} logs -l app.kubernetes.io/component=mlflow",
        ),
    ]
    if opts.train:
        steps.append(
            Step(
                "train",
                "First training (a Job from the CronJob)",
                release.first_training,
                f"{KUBECTL} get jobs; {KUBECTL} logs -l job-name",
            )
        )
    steps += [
        Step(
            "rollout",
            "Waiting for every Deployment",
            release.wait_release,
            LOOK_PODS
            + "; serving pods stay unready until a model exists: make train ENV="
            + opts.env,
        ),
        Step(
            "address",
            "Waiting for the Ingress",
            ingress.wait_ingress,
            f"{KUBECTL} describe ingress; {KUBECTL} get gateway,httproute",
        ),
        Step("summary", "Next commands", operations.summary),
    ]
    return steps


def plan_images(opts: Options) -> list[Step]:
    return [ENGINE, BUILD]


def plan_destroy(opts: Options) -> list[Step]:
    if opts.env == "local":
        return [
            Step(
                "destroy",
                "Stopping the local cluster",
                cluster.destroy_local,
                "python3 hack/cluster/cluster.py status",
            )
        ]
    if opts.env == "kind":
        return [
            tools_step(("docker", "kind"), docker_daemon=True),
            Step(
                "destroy",
                f"Deleting kind cluster {opts.cluster}",
                cluster.destroy_kind,
                "kind get clusters",
            ),
        ]
    return [
        tools_step(("kubectl", "helm"), docker_daemon=False),
        EKS_CONTEXT,
        Step(
            "destroy",
            f"helm uninstall {opts.release}",
            cluster.destroy_eks,
            "helm --kube-context {context} -n {ns} status {release}",
        ),
    ]


def on_the_cluster(tools: tuple[str, ...] = ("kubectl",)) -> list[Step]:
    """The first steps of a command that acts on an existing deployment."""
    return [
        tools_step(tools, docker_daemon=False),
        Step("context", "kube-context", cluster.use_context, "kubectl config get-contexts"),
    ]


def plan_ui(opts: Options) -> list[Step]:
    return [
        *on_the_cluster(),
        Step(
            "ui",
            "Port-forward to the MLflow UI",
            operations.port_forward_ui,
            f"{KUBECTL} get svc -l app.kubernetes.io/component=mlflow",
        ),
    ]


def plan_predict(opts: Options) -> list[Step]:
    return [
        *on_the_cluster(),
        Step(
            "predict",
            "A prediction through the Ingress",
            ingress.predict,
            f"{KUBECTL} describe ingress; {KUBECTL} logs -l app.kubernetes.io/component=serving",
        ),
    ]


def plan_status(opts: Options) -> list[Step]:
    return [
        *on_the_cluster(("kubectl", "helm")),
        Step("status", f"Release {opts.release}", operations.show_status, LOOK_PODS),
    ]


def plan_train(opts: Options) -> list[Step]:
    return [
        *on_the_cluster(),
        Step(
            "train",
            "Training (a Job from the CronJob)",
            training.run_training,
            f"{KUBECTL} get cronjob,jobs",
        ),
    ]


def plan_e2e(opts: Options) -> list[Step]:
    return [
        *on_the_cluster(("kubectl", "python")),
        Step("discover", "Finding the release", e2e.discover, f"{KUBECTL} get deploy,ingress"),
        Step(
            "predict",
            "A prediction through the Ingress",
            e2e.predict_through_ingress,
            f"{KUBECTL} describe ingress",
        ),
        Step("mlflow", "Connecting to MLflow", e2e.connect_mlflow, f"{KUBECTL} get svc,pods"),
        Step(
            "weak", "A weak champion, rolled out", e2e.weak_champion, f"{KUBECTL} get deploy,pods"
        ),
        Step("candidate", "Training a better model", e2e.train_candidate, f"{KUBECTL} get pods"),
        Step(
            "promote",
            "Promoting it through the gate under load",
            e2e.promote_under_load,
            f"{KUBECTL} get events; {KUBECTL} logs -l app.kubernetes.io/component=rollout",
        ),
        Step(
            "ingress-model",
            "/model through the Ingress",
            e2e.served_through_ingress,
            f"{KUBECTL} describe ingress",
        ),
    ]


PLANNERS: dict[str, Callable[[Options], list[Step]]] = {
    "deploy": plan_deploy,
    "images": plan_images,
    "destroy": plan_destroy,
    "ui": plan_ui,
    "predict": plan_predict,
    "status": plan_status,
    "train": plan_train,
    "e2e": plan_e2e,
}
