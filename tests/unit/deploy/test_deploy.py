"""`make deploy` end to end against fakes: which steps run, in which order, with which commands
and which Helm values; and what the user reads when a step fails."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from deploy.helm import HelmError, Revision
from deploy.options import CLOUD_PROVIDER_KIND_IMAGE, Options
from deploy.plans import plan_deploy
from deploy.runner import run_steps
from deploy.shell import Result
from tests.unit.deploy.fakes import (
    INSTANCE,
    FakeCommands,
    FakeHelm,
    FakeHttp,
    deployment,
    fail,
    ingress,
    job_from_cronjob,
    kjson,
    make_ctx,
    obj,
    ok,
    option,
    steps_run,
)

MLFLOW_SEL = f"{INSTANCE},app.kubernetes.io/component=mlflow"
TRAIN_LOG = (
    "INFO loading iris\n"
    "run 0a1b: iris-classifier v1 PROMOTED (no champion yet): challenger f1_macro=0.9667 vs "
    "no comparable champion\n"
)


def pod_in(phase: str) -> dict[str, object]:
    return {"metadata": {"name": "train-abc"}, "status": {"phase": phase}}


SERVING_SEL = f"{INSTANCE},mlkube.io/model-name"


def image_id(words: list[str]) -> str:
    return "sha256:" + hashlib.sha256(words[-1].encode()).hexdigest()


def short_id(ref: str) -> str:
    return hashlib.sha256(ref.encode()).hexdigest()[:12]


def cluster_world(
    cmds: FakeCommands,
    *,
    serving_available: int = 0,
    job_states: list[dict[str, object]] | None = None,
    ingress_ips: tuple[str | None, ...] = ("172.18.0.5",),
) -> FakeCommands:
    """A cluster where the release's objects exist and come up."""
    serving = deployment(
        "mlkube-serving",
        available=serving_available,
        labels={"mlkube.io/model-name": "iris-classifier"},
    )
    cmds.on(
        "kubectl get deployment -n mlkube -l",
        INSTANCE,
        answer=kjson(
            deployment("mlkube-mlflow", replicas=1),
            serving,
            deployment("mlkube-rollout", replicas=1),
        ),
    )
    cmds.on(
        "kubectl get deployment -n mlkube -l",
        MLFLOW_SEL,
        answer=kjson(deployment("mlkube-mlflow", replicas=1)),
    )
    cmds.on(
        "kubectl", "get", "deployment", "-n", "mlkube", "-l", SERVING_SEL, answer=kjson(serving)
    )
    cmds.on("kubectl", "get", "cronjob", answer=kjson({"metadata": {"name": "mlkube-training"}}))
    cmds.on("kubectl", "create", "job", answer=job_from_cronjob)
    # The Job's pod is still creating its container, then runs.
    cmds.on(
        "kubectl get pods -n mlkube -l",
        answer=[kjson(pod_in(phase)) for phase in ("Pending", "Pending", "Running")],
    )
    cmds.on("kubectl logs", answer=ok(TRAIN_LOG))
    cmds.on(
        "kubectl", "get", "job", answer=[obj(status=s) for s in (job_states or [{"succeeded": 1}])]
    )
    cmds.on("kubectl", "get", "ingress", "-n", "mlkube", "-l", INSTANCE, answer=kjson(ingress()))
    cmds.on(
        "kubectl get ingress mlkube-serving",
        answer=[obj(**ingress(ip=ip)) for ip in ingress_ips],
    )
    return cmds


def kind_world(
    *, cluster_exists: bool = False, provider_running: bool = False, **kw: object
) -> FakeCommands:
    cmds = FakeCommands()
    cmds.on("docker", "info", answer=ok("27.3.1\n"))
    cmds.on("kind", "get", "clusters", answer=ok("mlkube\n" if cluster_exists else "other\n"))
    cmds.on("kubectl", "config", "get-contexts", answer=ok("kind-mlkube\nkind-other\n"))
    cmds.on("kubectl", "get", "nodes", answer=ok("node/mlkube-control-plane\n"))
    running = (
        f"mlkube-cloud-provider-kind\t{CLOUD_PROVIDER_KIND_IMAGE}\n" if provider_running else ""
    )
    cmds.on("docker", "ps", "--format", answer=ok(running + "web\tnginx:1.27\n"))
    cmds.on("pgrep", answer=fail("", 1))
    cmds.on("docker", "ps", "-a", answer=ok(""))
    cmds.on("docker", "image", "inspect", answer=lambda w: ok(image_id(w) + "\n"))
    return cluster_world(cmds, **kw)  # type: ignore[arg-type]


def ready_http() -> FakeHttp:
    return FakeHttp().on("GET", "/healthz/ready", (200, {"status": "ready"}))


@dataclass
class Deployed:
    cmds: FakeCommands
    helm: FakeHelm
    http: FakeHttp
    text: str  # what the user read


def first_kind_deploy(repo: Path, tmp_path: Path) -> Deployed:
    """`make deploy` on a machine without the cluster. The chart's own first-run hook is off
    (the user's values), so the deploy trains (see the hook test below)."""
    mine = tmp_path / "mine.yaml"
    mine.write_text(yaml.safe_dump({"training": {"firstRun": {"enabled": False}}}))
    cmds, helm, http = kind_world(), FakeHelm(), ready_http()
    ctx, out, _ = make_ctx(Options(repo=repo, values=(mine,)), cmds, helm, http=http)
    assert run_steps(plan_deploy(ctx.opts), ctx) == 0, out.getvalue()
    return Deployed(cmds, helm, http, out.getvalue())


def test_kind_first_deploy_runs_every_step_in_order(repo: Path, tmp_path: Path) -> None:
    run = first_kind_deploy(repo, tmp_path)

    assert steps_run(run.text) == [
        "Checking docker, kind, kubectl, helm",
        "kind cluster mlkube",
        "Ingress through cloud-provider-kind",
        "Building images",
        "Loading images into kind",
        "The API server's endpoints (the operator's egress)",
        "helm upgrade --install mlkube",
        "Waiting for MLflow",
        "First training (a Job from the CronJob)",
        "Waiting for every Deployment",
        "Waiting for the Ingress",
        "Next commands",
    ]
    assert run.text.count("    ok (") == 12
    # What each step did happened in that order too.
    cmds = run.cmds
    order = [
        cmds.index("docker", "info"),
        cmds.index("kind", "create", "cluster"),
        cmds.index("kubectl", "label"),
        cmds.index("docker", "run"),
        cmds.index("kubectl", "get", "ingressclass"),
        cmds.index("docker", "build"),
        cmds.index("kind", "load", "docker-image"),
        cmds.index("kubectl", "rollout", "status", "deployment/mlkube-mlflow"),
        cmds.index("kubectl", "create", "job"),
        cmds.index("kubectl", "rollout", "status", "deployment/mlkube-rollout"),
        cmds.index("kubectl", "get", "ingress", "mlkube-serving"),
    ]
    assert order == sorted(order)


def test_kind_first_deploy_creates_the_cluster_and_its_ingress(repo: Path, tmp_path: Path) -> None:
    run = first_kind_deploy(repo, tmp_path)
    cmds = run.cmds

    [create] = cmds.ran("kind", "create", "cluster")
    assert option(create, "--name") == "mlkube"
    assert option(create, "--config") == str(repo / "deploy" / "kind-config.yaml")
    assert "creating kind cluster mlkube from kind-config.yaml" in run.text
    # The single node takes load-balancer traffic: kubeadm's exclusion label is removed.
    [label] = cmds.ran("kubectl", "label")
    assert "node/mlkube-control-plane" in label
    assert "node.kubernetes.io/exclude-from-external-load-balancers-" in label
    # cloud-provider-kind runs next to the nodes, on their network; no port mapping on Linux.
    [provider] = cmds.ran("docker", "run")
    assert option(provider, "--name") == "mlkube-cloud-provider-kind"
    assert option(provider, "--network") == "kind"
    assert CLOUD_PROVIDER_KIND_IMAGE in provider
    assert "--enable-lb-port-mapping" not in provider
    assert f"cloud-provider-kind: started container {CLOUD_PROVIDER_KIND_IMAGE}" in run.text
    assert "IngressClass cloud-provider-kind ready" in run.text
    # Every kubectl call names the kind context explicitly.
    kubectl_contexts = {
        c
        for w, c in zip(cmds.calls, cmds.contexts, strict=True)
        if w[0] == "kubectl" and w[1] != "config"
    }
    assert kubectl_contexts == {"kind-mlkube"}


def test_kind_first_deploy_builds_four_images_and_loads_them(repo: Path, tmp_path: Path) -> None:
    run = first_kind_deploy(repo, tmp_path)
    cmds = run.cmds

    # Four targets from one Dockerfile, on the official base (the fake has every image, so no
    # local base is built), each retagged with its content id so only changed pods roll.
    builds = cmds.ran("docker", "build")
    assert [option(b, "--target") for b in builds] == ["mlflow", "train", "serve", "rollout"]
    assert {option(b, "-f") for b in builds} == {str(repo / "images" / "Dockerfile")}
    assert {b[-1] for b in builds} == {str(repo)}  # the build context
    assert {option(b, "--build-arg") for b in builds} == {
        "PYTHON_IMAGE=python:3.11.17-slim-bookworm"
    }
    assert not cmds.ran("local-base.sh")
    built = [
        f"mlkube-{c}:0.1.0-{short_id(f'mlkube-{c}:0.1.0')}"
        for c in ("mlflow", "train", "serve", "rollout")
    ]
    assert "building mlkube-serve:0.1.0 (target serve, docker)" in run.text
    for ref in built:
        assert f"built {ref} (" in run.text
    # Exactly those go into the kind node.
    [load] = cmds.ran("kind", "load", "docker-image")
    assert option(load, "--name") == "mlkube"
    assert sorted(w for w in load if w.startswith("mlkube-")) == sorted(built)
    assert "loaded 4 images into kind cluster mlkube" in run.text


def test_kind_first_deploy_installs_the_chart_with_our_images(repo: Path, tmp_path: Path) -> None:
    run = first_kind_deploy(repo, tmp_path)

    # One Helm call: the kind values, our images, no --wait (the model does not exist yet).
    [(name, call)] = run.helm.calls
    assert name == "upgrade_install"
    assert call["release"] == "mlkube"
    assert call["chart"] == repo / "charts" / "mlkube"
    assert call["namespace"] == "mlkube"
    assert call["context"] == "kind-mlkube"
    assert call["wait"] is False
    assert call["atomic"] is False
    # Hooks are awaited within it: never shorter than the webhook hook's deadline (sqlite: 840 s)
    # plus a minute, even with the 600 s of --timeout.
    assert call["timeout"] == "900s"
    values = call["values"]
    assert values["serving"]["replicas"] == 2  # from values-kind.yaml
    serve_tag = f"0.1.0-{short_id('mlkube-serve:0.1.0')}"
    assert values["serving"]["image"] == {"repository": "mlkube-serve", "tag": serve_tag}
    assert values["image"] == {"pullPolicy": "IfNotPresent"}  # no registry on kind
    assert values["training"]["image"]["repository"] == "mlkube-train"
    assert "release mlkube revision 1: deployed" in run.text


def test_kind_first_deploy_trains_once_and_says_what_next(repo: Path, tmp_path: Path) -> None:
    run = first_kind_deploy(repo, tmp_path)
    cmds = run.cmds

    # The first training is a Job made from the CronJob, created as a manual run.
    job = "mlkube-training-manual-20260101000000"
    [dry_run] = cmds.ran("kubectl", "create", "job")
    assert dry_run[3] == job
    assert option(dry_run, "--from") == "cronjob/mlkube-training"
    assert option(dry_run, "--dry-run") == "client"
    created = json.loads(cmds.input_of("kubectl", "create", "-n", "mlkube", "-f", "-"))
    [train] = created["spec"]["template"]["spec"]["containers"]
    assert {e["name"]: e["value"] for e in train["env"]}["TRAIN_TRIGGER"] == "manual"
    # Its log is followed once the container runs, and the verdict is said at the end.
    started = [i for i, c in enumerate(cmds.calls) if c[:3] == ["kubectl", "get", "pods"]]
    follow = cmds.calls.index(["kubectl", "logs", "-f", f"job/{job}", "-n", "mlkube"])
    assert len(started) == 3
    assert started[-1] < follow
    assert f"job/{job} succeeded: {TRAIN_LOG.splitlines()[-1]}" in run.text
    # The Ingress answers, and the summary says how to use it.
    assert run.http.requests[-1][:2] == ("GET", "http://172.18.0.5/healthz/ready")
    assert "serving answers through the Ingress at http://172.18.0.5" in run.text
    assert "mlkube is up in namespace mlkube" in run.text
    assert "curl -s -X POST http://172.18.0.5/invocations" in run.text
    assert "make ui" in run.text
    assert "make train ENV=kind" in run.text


def test_first_install_leaves_the_first_training_to_the_charts_hook(repo: Path) -> None:
    cmds, helm = kind_world(), FakeHelm()
    # The hook Job's name follows the chart's fullname (here with a fullnameOverride).
    cmds.on(
        "kubectl get job -n mlkube -l",
        f"{INSTANCE},app.kubernetes.io/component=training",
        answer=kjson({"metadata": {"name": "iris-training-first-run"}}),
    )
    ctx, out, _ = make_ctx(Options(repo=repo), cmds, helm, http=ready_http())

    assert run_steps(plan_deploy(ctx.opts), ctx) == 0, out.getvalue()

    assert not cmds.ran("kubectl", "create", "job")
    assert "the chart's post-install hook trained once already: skipped" in out.getvalue()
    assert "logs job/iris-training-first-run" in out.getvalue()


def test_rerun_upgrades_in_place(repo: Path) -> None:
    cmds = kind_world(cluster_exists=True, provider_running=True, serving_available=2)
    helm = FakeHelm(installed=Revision("mlkube", "mlkube", 3, "deployed"))
    ctx, out, _ = make_ctx(Options(repo=repo), cmds, helm, http=ready_http())

    assert run_steps(plan_deploy(ctx.opts), ctx) == 0, out.getvalue()

    assert not cmds.ran("kind", "create")
    assert not cmds.ran("docker", "run")  # a cloud-provider-kind is already serving
    assert not cmds.ran("kubectl", "create", "job")  # a model is served: no first training
    assert [name for name, _ in helm.calls] == ["upgrade_install"]
    assert "release mlkube revision 4: deployed" in out.getvalue()
    assert "a model is already served: skipped" in out.getvalue()


def test_no_build_and_no_train(repo: Path) -> None:
    opts = Options(repo=repo, build=False, train=False, tag="1.2.3")
    keys = [s.key for s in plan_deploy(opts)]
    assert keys == [
        "tools",
        "cluster",
        "ingress",
        "images",
        "apiserver",
        "release",
        "mlflow",
        "rollout",
        "address",
        "summary",
    ]
    cmds, helm = kind_world(), FakeHelm()
    ctx, out, _ = make_ctx(opts, cmds, helm, http=ready_http())
    assert run_steps(plan_deploy(opts), ctx) == 0, out.getvalue()
    assert not cmds.ran("docker", "build")
    assert not cmds.ran("kind", "load")
    assert helm.calls[0][1]["values"]["rollout"]["image"] == {
        "repository": "mlkube-rollout",
        "tag": "1.2.3",
    }


def test_kind_on_macos_maps_load_balancer_ports(repo: Path) -> None:
    cmds = kind_world()
    cmds.on(
        "docker ps --filter label=io.x-k8s.cloud-provider-kind.cluster=mlkube",
        answer=ok("0.0.0.0:42381->80/tcp, [::]:42381->80/tcp\n"),
    )
    http = ready_http()
    ctx, out, _ = make_ctx(Options(repo=repo), cmds, http=http, host_os="darwin")

    assert run_steps(plan_deploy(ctx.opts), ctx) == 0, out.getvalue()

    assert cmds.ran("docker", "run")[0][-1] == "--enable-lb-port-mapping"
    assert http.requests[-1][1] == "http://127.0.0.1:42381/healthz/ready"


def test_eks_pushes_to_the_registry_and_layers_the_users_values(repo: Path, tmp_path: Path) -> None:
    mine = tmp_path / "mine.yaml"
    mine.write_text(
        yaml.safe_dump({"serving": {"replicas": 5, "ingress": {"hosts": ["z"]}, "resources": None}})
    )
    registry = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    opts = Options(repo=repo, env="eks", registry=registry, values=(mine,))
    cmds = cluster_world(FakeCommands())
    cmds.on("docker", "info", answer=ok("27.3.1"))
    cmds.on("docker", "image", "inspect", answer=lambda w: ok(image_id(w) + "\n"))
    cmds.on(
        "kubectl", "config", "current-context", answer=ok("arn:aws:eks:eu-west-1:1:cluster/prod\n")
    )
    helm = FakeHelm()
    ctx, out, _ = make_ctx(opts, cmds, helm, http=ready_http())

    assert [s.key for s in plan_deploy(opts)] == [
        "tools",
        "context",
        "addons",
        "engine",
        "build",
        "push",
        "namespace",
        "apiserver",
        "release",
        "mlflow",
        "train",
        "rollout",
        "address",
        "summary",
    ]
    assert run_steps(plan_deploy(opts), ctx) == 0, out.getvalue()

    assert not cmds.ran("kind")
    # Each image is pushed under a tag made of its content id: a rebuilt image gets a new tag,
    # so the pods roll and a node never keeps an older image of the same tag (IfNotPresent).
    pushed = [
        f"{registry}/mlkube-{c}:0.1.0-{short_id(f'{registry}/mlkube-{c}:0.1.0')}"
        for c in ("mlflow", "train", "serve", "rollout")
    ]
    assert [c[-1] for c in cmds.ran("docker", "push")] == pushed
    call = helm.calls[0][1]
    assert call["context"] == "arn:aws:eks:eu-west-1:1:cluster/prod"
    # No --atomic/--rollback-on-failure (Helm 4 makes it wait for every resource before the
    # post-install hooks, and serving is unready until the hook's training made a model).
    assert call["atomic"] is False
    assert call["wait"] is False
    values = call["values"]
    assert values["image"] == {"registry": registry}
    assert values["serving"]["replicas"] == 5  # the user's file is applied last
    assert values["serving"]["ingress"] == {"className": "alb", "hosts": ["z"]}  # lists replaced
    assert values["serving"]["image"] == {
        "repository": "mlkube-serve",
        "tag": pushed[2].rsplit(":", 1)[-1],
    }
    assert "make ui ENV=eks" in out.getvalue()


def test_eks_refuses_a_kind_context(repo: Path) -> None:
    opts = Options(repo=repo, env="eks", registry="r.example")
    cmds = FakeCommands().on("kubectl", "config", "current-context", answer=ok("kind-mlkube\n"))
    helm = FakeHelm()
    ctx, out, _ = make_ctx(opts, cmds, helm)

    assert run_steps(plan_deploy(opts), ctx) == 1

    assert "ENV=eks refuses the kind context 'kind-mlkube'" in out.getvalue()
    assert not helm.calls
    assert not cmds.ran("docker", "build")


def test_missing_tools_are_named_with_how_to_get_them(repo: Path) -> None:
    cmds = FakeCommands()
    tools = {"docker": "/usr/bin/docker", "kind": None, "kubectl": "/k", "helm": None}
    ctx, out, _ = make_ctx(Options(repo=repo), cmds, tools=tools)

    assert run_steps(plan_deploy(ctx.opts), ctx) == 1

    text = out.getvalue()
    assert "kind is missing: install kind" in text
    assert "go install sigs.k8s.io/kind" in text
    assert "helm is missing: run `make tools`" in text
    assert "docker is missing" not in text
    assert [c[:2] for c in cmds.calls] == [["docker", "info"]]  # nothing run but the check


def test_a_stopped_docker_daemon_is_named_with_the_missing_tools(repo: Path) -> None:
    """Said at once, not after the user has installed kind and helm."""
    cmds = FakeCommands().on("docker", "info", answer=fail("Cannot connect to the Docker daemon"))
    tools = {"docker": "/usr/bin/docker", "kind": None, "kubectl": "/k", "helm": "/h"}
    ctx, out, _ = make_ctx(Options(repo=repo), cmds, tools=tools)

    assert run_steps(plan_deploy(ctx.opts), ctx) == 1

    text = out.getvalue()
    assert "kind is missing" in text
    assert "its daemon does not answer" in text


@pytest.mark.parametrize(
    ("answer", "refused", "verdict"),
    [
        (ok("v3.8.0"), False, "helm version v3.8.0"),
        (ok("v4.1.4"), False, "helm version v4.1.4"),
        (ok("v3.7.2"), True, "/repo/bin/helm is Helm v3.7.2; mlkube needs Helm 3.8 or later"),
        (
            fail("Error: unknown flag: --template"),
            True,
            "`/repo/bin/helm version` did not tell its version (Error: unknown flag: --template)"
            "; mlkube needs Helm 3.8 or later",
        ),
    ],
)
def test_helm_older_than_3_8_is_refused_with_how_to_fix(
    repo: Path, answer: Result, refused: bool, verdict: str
) -> None:
    """Your own helm on PATH wins over ./bin's: one too old for the flags we pass (through
    pyhelm3) fails here, not halfway through a release."""
    cmds = kind_world().on("helm", "version", answer=answer)
    ctx, out, _ = make_ctx(Options(repo=repo), cmds, FakeHelm(), http=ready_http())
    code = run_steps(plan_deploy(ctx.opts), ctx)
    text = out.getvalue()
    assert verdict in text
    assert cmds.ran("helm", "version") == [["helm", "version", "--template", "{{.Version}}"]]
    if refused:
        assert code == 1
        assert "take it off PATH so the pinned ./bin/helm of `make tools` is used" in text
        assert not cmds.ran("kind")  # stopped at the tools step
    else:
        assert code == 0, text


def test_docker_daemon_down(repo: Path) -> None:
    cmds = FakeCommands().on("docker", "info", answer=fail("Cannot connect to the Docker daemon"))
    ctx, out, _ = make_ctx(Options(repo=repo), cmds)
    assert run_steps(plan_deploy(ctx.opts), ctx) == 1
    assert "its daemon does not answer" in out.getvalue()
    assert "Cannot connect to the Docker daemon" in out.getvalue()


def test_failed_build_says_what_and_where_to_look(repo: Path) -> None:
    cmds = kind_world(cluster_exists=True, provider_running=True)
    cmds.on(
        "docker build --target serve",
        answer=fail("#12 ERROR: failed to solve: process did not complete"),
    )
    helm = FakeHelm()
    ctx, out, _ = make_ctx(Options(repo=repo), cmds, helm)

    assert run_steps(plan_deploy(ctx.opts), ctx) == 1

    text = out.getvalue()
    assert "FAILED: Building images" in text
    assert "`docker build --target serve" in text
    assert "failed to solve" in text
    assert "Look with:\n  docker images 'mlkube-*'" in text
    assert not helm.calls
    assert not cmds.ran("kind", "load")
    assert len(cmds.ran("docker", "build")) == 3  # mlflow, train, then serve failed


def test_failed_helm_release_points_at_helm_status(repo: Path) -> None:
    helm = FakeHelm(
        fail_with=HelmError(
            "helm upgrade --install mlkube failed: values don't "
            "meet the specifications of the schema"
        )
    )
    cmds = kind_world(cluster_exists=True, provider_running=True)
    ctx, out, _ = make_ctx(Options(repo=repo), cmds, helm)

    assert run_steps(plan_deploy(ctx.opts), ctx) == 1

    text = out.getvalue()
    assert "FAILED: helm upgrade --install mlkube" in text
    assert "helm --kube-context kind-mlkube -n mlkube status mlkube" in text
    assert not cmds.ran("kubectl", "rollout")


def test_failed_training_job_names_the_job(repo: Path) -> None:
    failed = {
        "failed": 3,
        "conditions": [
            {
                "type": "Failed",
                "status": "True",
                "reason": "BackoffLimitExceeded",
                "message": "Job has reached the specified backoff limit",
            }
        ],
    }
    cmds = kind_world(
        cluster_exists=True, provider_running=True, job_states=[{"active": 1}, failed]
    )
    # An upgrade (the hook does not run) of a release that serves no model yet: it trains.
    helm = FakeHelm(installed=Revision("mlkube", "mlkube", 1, "failed"))
    ctx, out, clock = make_ctx(Options(repo=repo), cmds, helm)

    assert run_steps(plan_deploy(ctx.opts), ctx) == 1

    text = out.getvalue()
    job = "mlkube-training-manual-20260101000000"
    assert f"training job/{job} failed: BackoffLimitExceeded" in text
    assert f"kubectl --context kind-mlkube -n mlkube logs job/{job}" in text
    # The pod was awaited (1 s polls while its container was created), then the Job was polled
    # twice with a sleep in between, without real time passing.
    assert clock.slept == [1.0, 1.0, 3.0]
    # Its log was streamed to the terminal while it ran.
    assert cmds.ran("kubectl", "logs", "-f", f"job/{job}")


def test_ingress_without_an_address_times_out(repo: Path) -> None:
    cmds = kind_world(
        cluster_exists=True, provider_running=True, serving_available=2, ingress_ips=(None,)
    )
    ctx, out, clock = make_ctx(Options(repo=repo), cmds)

    assert run_steps(plan_deploy(ctx.opts), ctx) == 1

    text = out.getvalue()
    assert "timed out after 300s waiting for an address on ingress/mlkube-serving" in text
    assert "describe ingress" in text
    assert 300 <= sum(clock.slept) < 310


def test_eks_cross_platform_builds_push_with_buildx(repo: Path) -> None:
    registry = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    opts = Options(repo=repo, env="eks", registry=registry, platform="linux/arm64")
    cmds = cluster_world(FakeCommands(), serving_available=2)
    cmds.on("kubectl config current-context", answer=ok("prod\n"))

    def buildx(words: list[str]) -> Result:
        # What buildx writes after pushing: the digest the registry knows the image by.
        target = option(words, "--target")
        digest = "sha256:" + hashlib.sha256(target.encode()).hexdigest()
        Path(option(words, "--metadata-file")).write_text(
            json.dumps({"containerimage.digest": digest})
        )
        return ok()

    cmds.on("docker buildx build", answer=buildx)
    helm = FakeHelm()
    ctx, out, _ = make_ctx(opts, cmds, helm, http=ready_http())

    assert run_steps(plan_deploy(opts), ctx) == 0, out.getvalue()

    builds = cmds.ran("docker buildx build")
    assert len(builds) == 4
    assert builds[0][3:5] == ["--platform", "linux/arm64"]
    assert builds[0][-4] == "--push"
    assert builds[0][-1] == str(repo)
    assert f"{registry}/mlkube-mlflow:0.1.0" in builds[0]
    assert not cmds.ran("docker push")
    assert "pushed by buildx while building" in out.getvalue()
    # Deployed by the digest the registry gave each image, never by a tag that may move.
    serve_digest = "sha256:" + hashlib.sha256(b"serve").hexdigest()
    assert helm.calls[0][1]["values"]["serving"]["image"]["digest"] == serve_digest


def test_ingress_path_prefix_goes_before_the_endpoints(repo: Path) -> None:
    routed = ingress()
    routed["spec"]["rules"][0]["http"]["paths"][0]["path"] = "/iris/"
    cmds = kind_world(cluster_exists=True, provider_running=True, serving_available=2)
    cmds.on("kubectl get ingress -n mlkube -l", INSTANCE, answer=kjson(routed))
    http = ready_http()
    ctx, out, _ = make_ctx(Options(repo=repo), cmds, http=http)

    assert run_steps(plan_deploy(ctx.opts), ctx) == 0, out.getvalue()

    assert http.requests[-1][1] == "http://172.18.0.5/iris/healthz/ready"


# --- the local cluster (ENV=local) ------------------------------------------------------------


def local_env(repo: Path) -> tuple[str, str, str, str]:
    """The command that asks the local cluster where it is (`cluster.py env --json`)."""
    return ("py", str(repo / "hack/cluster/cluster.py"), "env", "--json")


def local_world(*, answers: bool, repo: Path, kubeconfig: Path) -> FakeCommands:
    cmds = cluster_world(FakeCommands(), ingress_ips=("10.244.0.1",))
    state = kubeconfig.parent
    where = {"kubeconfig": str(kubeconfig), "context": "mlkube-local", "logs": str(state / "logs"),
             "cache": str(state / "cache"), "state": str(state)}  # fmt: skip
    cmds.on(*local_env(repo), answer=ok(json.dumps(where)))
    cmds.on("podman", "info", answer=ok("4.3.1\n"))
    cmds.on("podman", "image", "inspect", answer=lambda w: ok(image_id(w) + "\n"))
    cmds.on("kubectl", "get", "--raw", "/readyz", answer=ok("ok") if answers else fail("refused"))
    return cmds


def test_local_deploy_imports_podman_images_into_the_node(repo: Path, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\n")
    opts = Options(repo=repo, env="local", engine="podman")
    cmds, helm = local_world(answers=True, repo=repo, kubeconfig=kubeconfig), FakeHelm()
    tools = {"podman": "/bin/podman", "kubectl": "/k/kubectl", "helm": "/h/helm", "python": "/py"}
    ctx, out, _ = make_ctx(opts, cmds, helm, http=ready_http(), tools=tools)

    assert [s.key for s in plan_deploy(opts)][:5] == ["tools", "cluster", "engine", "build", "load"]
    assert run_steps(plan_deploy(opts), ctx) == 0, out.getvalue()

    assert not cmds.ran("py", str(repo / "hack/cluster/cluster.py"), "up")  # it answered
    # Its kubeconfig is where `cluster.py env --json` says, asked once.
    assert len(cmds.ran(*local_env(repo))) == 1
    built = [
        f"localhost/mlkube-{c}:0.1.0-{short_id(f'localhost/mlkube-{c}:0.1.0')}"
        for c in ("mlflow", "train", "serve", "rollout")
    ]
    [load] = cmds.ran("py", str(repo / "hack/cluster/cluster.py"), "images")
    assert option(load, "--engine") == "podman"
    assert load[-4:] == built
    call = helm.calls[0][1]
    assert call["context"] == "mlkube-local"
    values = call["values"]
    assert values["image"] == {"registry": "localhost", "pullPolicy": "Never"}
    assert values["serving"]["image"]["tag"] == built[2].rsplit(":", 1)[-1]
    assert values["mlflow"]["persistence"]["storageClassName"] == "standard"
    assert "http://10.244.0.1" in out.getvalue()
    assert "make ui ENV=local" in out.getvalue()


def test_local_deploy_starts_the_cluster_when_it_does_not_answer(
    repo: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 0)
    opts = Options(repo=repo, env="local", build=False)
    cmds = local_world(answers=False, repo=repo, kubeconfig=tmp_path / "none")
    tools = {"kubectl": "/k/kubectl", "helm": "/h/helm", "python": "/py"}
    ctx, out, _ = make_ctx(opts, cmds, FakeHelm(), tools=tools)

    assert run_steps(plan_deploy(opts), ctx) == 1

    [up] = cmds.ran("py", str(repo / "hack/cluster/cluster.py"), "up")
    assert "--no-images" in up
    # Started, yet no kubeconfig answers: said plainly, and nothing is installed.
    assert "the local cluster started but its API does not answer" in out.getvalue()
    assert f"logs in {tmp_path / 'logs'}" in out.getvalue()


def test_local_deploy_without_root_says_how_to_start_the_cluster(
    repo: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    opts = Options(repo=repo, env="local", build=False)
    cmds = local_world(answers=False, repo=repo, kubeconfig=tmp_path / "none")
    tools = {"kubectl": "/k/kubectl", "helm": "/h/helm", "python": "/py"}
    ctx, out, _ = make_ctx(opts, cmds, FakeHelm(), tools=tools)

    assert run_steps(plan_deploy(opts), ctx) == 1

    assert "starting it needs root" in out.getvalue()
    assert "sudo make cluster-up" in out.getvalue()
    assert not cmds.ran("py", str(repo / "hack/cluster/cluster.py"), "up")


def test_the_summary_names_a_namespace_and_release_that_are_not_the_defaults(
    repo: Path, tmp_path: Path
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\n")
    opts = Options(repo=repo, env="local", build=False, namespace="mlkube-e2e", release="e2e")
    cmds = local_world(answers=True, repo=repo, kubeconfig=kubeconfig)
    cmds.on("kubectl get deployment -n mlkube-e2e", answer=kjson(deployment("e2e-serving")))
    cmds.on("kubectl get ingress -n mlkube-e2e", answer=kjson(ingress()))
    cmds.on("kubectl get ingress mlkube-serving", answer=obj(**ingress(ip="10.244.0.1")))
    tools = {"kubectl": "/k/kubectl", "helm": "/h/helm", "python": "/py"}
    ctx, out, _ = make_ctx(opts, cmds, FakeHelm(), http=ready_http(), tools=tools)

    assert run_steps(plan_deploy(opts), ctx) == 0, out.getvalue()

    text = out.getvalue()
    assert "make ui ENV=local NAMESPACE=mlkube-e2e RELEASE=e2e " in text
    assert "make train ENV=local NAMESPACE=mlkube-e2e RELEASE=e2e\n" in text
