"""The steps of ``make deploy`` and friends, and the planners that list them.

A planner is a pure function of the :class:`Options`: ``plan_deploy(opts)`` says which steps run
in which order. Each step's action talks to the world only through the :class:`Ctx` (kubectl,
docker and kind through ``ctx.cmds``, Helm through ``ctx.helm``, HTTP through ``ctx.http``,
time through ``ctx.clock``/``ctx.sleep``), so unit tests run every step against fakes."""

from __future__ import annotations

import json
import re
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mlkube.deploy import kube
from mlkube.deploy.helm import Helm, merge_values
from mlkube.deploy.options import (
    CLOUD_PROVIDER_KIND_CONTAINER,
    CLOUD_PROVIDER_KIND_IMAGE,
    COMPONENTS,
    EXCLUDE_LB_LABEL,
    INGRESS_CLASS_KIND,
    Image,
    Options,
    State,
    app_version,
    load_values,
)
from mlkube.deploy.runner import Commands, Console, Result, Step, StepFailed

HttpFn = Callable[[str, str, bytes | None, Mapping[str, str]], tuple[int, bytes]]

TOOL_HINTS = {
    "docker": "install Docker (Docker Desktop, or Docker Engine on Linux): "
    "https://docs.docker.com/get-docker/",
    "kind": "install kind v0.31+: `go install sigs.k8s.io/kind@v0.31.0`, `brew install kind`, or a "
    "release binary (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)",
    "kubectl": "run `make tools` (puts a pinned kubectl into ./bin), or "
    "https://kubernetes.io/docs/tasks/tools/",
    "helm": "run `make tools` (puts a pinned helm into ./bin), or "
    "https://helm.sh/docs/intro/install/",
}

# The oldest Helm with every flag we (and pyhelm3 under us) pass; the newest of them is
# `uninstall --wait` (3.7). None is Helm-4-only, and pyhelm3 renames the ones Helm 4 changed.
MIN_HELM = (3, 8)

# Two Iris rows in MLflow's dataframe_split format, which /invocations accepts as
# `mlflow models serve` does; the columns are the training job's feature names.
SAMPLE_COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
SAMPLE_ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
SAMPLE_REQUEST = {"dataframe_split": {"columns": SAMPLE_COLUMNS, "data": SAMPLE_ROWS}}

# Read by the training job (jobs.settings.TrainSettings): `cron` on the CronJob, `manual` here.
ENV_TRAIN_TRIGGER = "TRAIN_TRIGGER"

# Where the chart takes each image from: <values key>.image.{repository,tag}.
IMAGE_VALUES_KEY = {
    "mlflow": "mlflow",
    "train": "training",
    "serve": "serving",
    "rollout": "rollout",
}


def urllib_http(
    method: str, url: str, body: bytes | None, headers: Mapping[str, str], timeout: float = 10.0
) -> tuple[int, bytes]:
    """One HTTP request; HTTP errors are answers (status, body), network errors raise OSError."""
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


@dataclass
class Ctx:
    opts: Options
    cmds: Commands
    helm: Helm
    tools: Mapping[str, str | None]
    console: Console = field(default_factory=Console)
    http: HttpFn = urllib_http
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    now: Callable[[], float] = time.time
    host_os: str = sys.platform
    state: State = field(default_factory=State)
    failure_hook: Callable[[Ctx, Step], None] | None = None

    @property
    def context(self) -> str:
        if self.state.context:
            return self.state.context
        return self.opts.kind_context if self.opts.env == "kind" else ""

    def tool(self, name: str) -> str:
        path = self.tools.get(name)
        if not path:
            raise StepFailed(f"{name} is not installed: {TOOL_HINTS.get(name, '')}")
        return path

    def run(self, tool: str, *args: str, **kwargs: Any) -> Result:
        return self.cmds.run([self.tool(tool), *args], **kwargs)

    def kubectl(self, *args: str, **kwargs: Any) -> Result:
        context = ["--context", self.context] if self.context else []
        return self.run("kubectl", *context, *args, **kwargs)

    def fmt(self, template: str) -> str:
        """Fill a step's ``look`` hint; plain replace, since kubectl hints hold braces."""
        return (
            template.replace("{context}", self.context or "<current>")
            .replace("{ns}", self.opts.namespace)
            .replace("{release}", self.opts.release)
            .replace("{cluster}", self.opts.cluster)
        )

    def on_failure(self, step: Step) -> None:
        if self.failure_hook is not None:
            self.failure_hook(self, step)

    @property
    def make_env(self) -> str:
        """What to append to a `make` command so it targets the same place."""
        return "" if self.opts.env == "kind" else f" ENV={self.opts.env}"


KUBECTL = "kubectl --context {context} -n {ns}"


# --- tools -------------------------------------------------------------------------------


def tools_step(names: tuple[str, ...], docker_daemon: bool) -> Step:
    def action(ctx: Ctx) -> None:
        missing = [n for n in names if not ctx.tools.get(n)]
        if missing:
            raise StepFailed("\n".join(f"{n} is missing: {TOOL_HINTS.get(n, n)}" for n in missing))
        for name in names:
            ctx.console.info(f"{name}: {ctx.tools[name]}")
        if "helm" in names:
            ctx.console.info(f"helm version {check_helm_version(ctx)}")
        if docker_daemon:
            info = ctx.run("docker", "info", "--format", "{{.ServerVersion}}", check=False)
            if not info.ok:
                raise StepFailed(
                    "Docker is installed but its daemon does not answer: start Docker Desktop, "
                    "or the service (`sudo systemctl start docker`), then retry.\n"
                    + (info.stderr.strip().splitlines() or [""])[-1]
                )
            ctx.console.info(f"docker daemon {info.stdout.strip()}")

    return Step("tools", "Checking " + ", ".join(names), action)


def check_helm_version(ctx: Ctx) -> str:
    """The helm we run must be 3.8 or later; your own helm on PATH comes before ./bin's."""
    path = ctx.tool("helm")
    fix = (
        f"upgrade {path} to Helm 3.8 or later (https://helm.sh/docs/intro/install/), or take it "
        "off PATH so the pinned ./bin/helm of `make tools` is used"
    )
    answer = ctx.run("helm", "version", "--template", "{{.Version}}", check=False, timeout=30)
    text = (answer.stdout + answer.stderr).strip()
    found = re.search(r"v?(\d+)\.(\d+)\.(\d+)", text)
    if not answer.ok or found is None:
        raise StepFailed(
            f"`{path} version` did not tell its version ({text[-300:] or 'no output'}); "
            f"mlkube needs Helm {MIN_HELM[0]}.{MIN_HELM[1]} or later: {fix}"
        )
    major, minor = int(found.group(1)), int(found.group(2))
    version = found.group(0)
    if (major, minor) < MIN_HELM:
        raise StepFailed(
            f"{path} is Helm {version}; mlkube needs Helm {MIN_HELM[0]}.{MIN_HELM[1]} or later "
            f"(it calls `helm uninstall --wait` and `helm upgrade --install --create-namespace "
            f"--output json`): {fix}"
        )
    return version


# --- cluster and context -------------------------------------------------------------------


def kind_clusters(ctx: Ctx) -> list[str]:
    return ctx.run("kind", "get", "clusters").stdout.split()


def ensure_kind_cluster(ctx: Ctx) -> None:
    opts = ctx.opts
    ctx.state.context = opts.kind_context
    if opts.cluster in kind_clusters(ctx):
        ctx.console.info(f"kind cluster {opts.cluster} exists")
        contexts = ctx.run("kubectl", "config", "get-contexts", "-o", "name").stdout.split()
        if opts.kind_context not in contexts:
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
        contexts = ctx.run("kubectl", "config", "get-contexts", "-o", "name").stdout.split()
        if ctx.opts.kind_context not in contexts:
            raise StepFailed(
                f"no kube-context {ctx.opts.kind_context}: is there a kind cluster named "
                f"{ctx.opts.cluster}? `make deploy` creates it (KIND_CLUSTER names it)",
                look="kind get clusters; kubectl config get-contexts",
            )
        ctx.state.context = ctx.opts.kind_context
        ctx.console.info(f"kube-context {ctx.context}")
    else:
        resolve_eks_context(ctx)


# --- ingress on kind -----------------------------------------------------------------------


def cloud_provider_running(ctx: Ctx) -> str | None:
    """Who already serves LoadBalancers/Ingress for kind here (two would fight), or None."""
    running = ctx.run("docker", "ps", "--format", "{{.Names}}\t{{.Image}}").stdout
    for line in running.splitlines():
        name, _, image = line.partition("\t")
        if name == CLOUD_PROVIDER_KIND_CONTAINER or "cloud-provider-kind" in image:
            return f"container {name}"
    pgrep = ctx.tools.get("pgrep")
    if pgrep and ctx.cmds.run([pgrep, "-x", "cloud-provider-kind"], check=False).ok:
        return "the cloud-provider-kind process on this host"
    return None


def ensure_kind_ingress(ctx: Ctx) -> None:
    # A single-node cluster: the control plane must take load-balancer traffic.
    nodes = ctx.kubectl("get", "nodes", "-l", EXCLUDE_LB_LABEL, "-o", "name").stdout.split()
    for node in nodes:
        ctx.kubectl("label", node, f"{EXCLUDE_LB_LABEL}-")
        ctx.console.info(f"{node}: removed label {EXCLUDE_LB_LABEL}")
    who = cloud_provider_running(ctx)
    if who:
        ctx.console.info(f"cloud-provider-kind: using {who}")
    else:
        existing = ctx.run(
            "docker",
            "ps",
            "-a",
            "--filter",
            f"name=^/{CLOUD_PROVIDER_KIND_CONTAINER}$",
            "--format",
            "{{.Names}}",
        ).stdout.split()
        if existing:
            ctx.run("docker", "start", CLOUD_PROVIDER_KIND_CONTAINER)
            ctx.console.info(f"cloud-provider-kind: restarted {CLOUD_PROVIDER_KIND_CONTAINER}")
        else:
            args = [
                "run",
                "-d",
                "--name",
                CLOUD_PROVIDER_KIND_CONTAINER,
                "--restart",
                "unless-stopped",
                "--network",
                "kind",
                "-v",
                "/var/run/docker.sock:/var/run/docker.sock",
                CLOUD_PROVIDER_KIND_IMAGE,
            ]
            if ctx.host_os in ("darwin", "win32"):
                # The kind network is inside Docker's VM there: publish the LB ports on the host.
                args.append("--enable-lb-port-mapping")
            ctx.run("docker", *args)
            ctx.console.info(f"cloud-provider-kind: started container {CLOUD_PROVIDER_KIND_IMAGE}")

    def has_class() -> bool | None:
        found = ctx.kubectl("get", "ingressclass", INGRESS_CLASS_KIND, "-o", "name", check=False)
        return True if found.ok else None

    kube.wait_for(ctx, f"IngressClass {INGRESS_CLASS_KIND}", has_class, timeout=180)
    ctx.console.info(f"IngressClass {INGRESS_CLASS_KIND} ready")


# --- images --------------------------------------------------------------------------------


def base_tag(ctx: Ctx) -> str:
    return ctx.opts.tag or app_version(ctx.opts.chart)


def build_images(ctx: Ctx) -> None:
    opts = ctx.opts
    if not opts.dockerfile.is_file():
        raise StepFailed(f"{opts.dockerfile} not found")
    tag = base_tag(ctx)
    registry = opts.registry if opts.env == "eks" else ""
    images: list[Image] = []
    for component in COMPONENTS:
        image = Image(component, tag, registry)
        ctx.console.info(f"building {image.ref} (target {component})")
        started = ctx.clock()
        build = ["--target", component, "-f", str(opts.dockerfile), "-t", image.ref]
        if opts.platform:
            # Cross-platform builds (e.g. arm64 nodes) need buildx, which pushes as it builds.
            ctx.run(
                "docker",
                "buildx",
                "build",
                "--platform",
                opts.platform,
                *build,
                "--push",
                str(opts.repo),
            )
        else:
            ctx.run("docker", "build", *build, str(opts.repo))
        if opts.env == "kind" and not opts.tag:
            # Tag each image with its content id: a rebuilt image gets a new tag, so the helm
            # upgrade rolls exactly the pods whose image changed and leaves the others alone.
            image_id = ctx.run(
                "docker", "image", "inspect", "--format", "{{.Id}}", image.ref
            ).stdout.strip()
            unique = Image(component, f"{tag}-{image_id.split(':')[-1][:12]}", registry)
            ctx.run("docker", "tag", image.ref, unique.ref)
            image = unique
        images.append(image)
        ctx.console.info(f"built {image.ref} ({ctx.clock() - started:.1f}s)")
    ctx.state.images = images


def planned_images(ctx: Ctx) -> None:
    """--no-build: use the images that are already there, tagged with the chart's appVersion."""
    registry = ctx.opts.registry if ctx.opts.env == "eks" else ""
    tag = base_tag(ctx)
    ctx.state.images = [Image(c, tag, registry) for c in COMPONENTS]
    ctx.console.info("using " + ", ".join(i.ref for i in ctx.state.images))


def load_images(ctx: Ctx) -> None:
    refs = [image.ref for image in ctx.state.images]
    ctx.console.info(f"copying {len(refs)} images into the node (unchanged ones are skipped)")
    ctx.run("kind", "load", "docker-image", "--name", ctx.opts.cluster, *refs)
    ctx.console.info(f"loaded {len(refs)} images into kind cluster {ctx.opts.cluster}")


def push_images(ctx: Ctx) -> None:
    if ctx.opts.platform:
        ctx.console.info("pushed by buildx while building")
        return
    for image in ctx.state.images:
        ctx.run("docker", "push", image.ref)
        ctx.console.info(f"pushed {image.ref}")


# --- the release -----------------------------------------------------------------------------


def image_values(images: list[Image]) -> dict[str, Any]:
    """The chart's image values for what we built: the registry (global) and each component's
    repository and tag. The pull policy stays the values file's business (kind: the images are
    on the node already)."""
    values: dict[str, Any] = {}
    registries = {image.registry for image in images}
    if len(registries) == 1 and (registry := registries.pop()):
        values["image"] = {"registry": registry}
    for image in images:
        values[IMAGE_VALUES_KEY[image.component]] = {
            "image": {"repository": image.name, "tag": image.tag}
        }
    return values


def release_values(ctx: Ctx) -> dict[str, Any]:
    """The target's values file, then the images we built, then the user's files (they win)."""
    opts = ctx.opts
    layers = [load_values(opts.env_values)]
    if ctx.state.images:
        layers.append(image_values(ctx.state.images))
    layers.extend(load_values(path) for path in opts.values)
    return merge_values(*layers)


def install_release(ctx: Ctx) -> None:
    opts = ctx.opts
    if not opts.chart.is_dir():
        raise StepFailed(f"chart {opts.chart} not found")
    values = release_values(ctx)
    ctx.state.values = values
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
    ctx.console.info(
        "Helm also runs the chart's hooks (webhook registration; on a first install, the first "
        f"training) and waits for them: a few minutes, at most {int(opts.timeout)}s"
    )
    revision = ctx.helm.upgrade_install(
        opts.release,
        opts.chart,
        values,
        namespace=opts.namespace,
        context=ctx.context,
        wait=False,
        atomic=False,
        timeout=f"{int(opts.timeout)}s",
    )
    ctx.state.extra["revision"] = revision.revision
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
    found = kube.items(ctx, "deployment", kube.release_selector(ctx.opts.release, "mlflow"))
    if not found:
        ctx.console.info("no MLflow Deployment in the release (an external MLflow?): skipped")
        return
    rollout_status(ctx, kube.name_of(found[0]))


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
    cronjob = kube.training_cronjob(ctx)
    job = f"{cronjob[:40]}-manual-{time.strftime('%Y%m%d%H%M%S', time.gmtime(ctx.now()))}"
    # kubectl builds the Job as `create job --from` does (owner reference to the CronJob, its
    # labels and annotations); we change the trigger, then create it.
    dry_run = ["create", "job", job, f"--from=cronjob/{cronjob}", "-n", ns, "--dry-run=client"]
    built = ctx.kubectl(*dry_run, "-o", "json").stdout
    manifest = kube.json_object(built, f"kubectl {' '.join(dry_run)}")
    ctx.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(mark_manual(manifest)))
    ctx.state.extra["job"] = job
    ctx.console.info(
        f"job/{job} created from cronjob/{cronjob} ({ENV_TRAIN_TRIGGER}=manual); its log follows"
    )
    timeout = int(ctx.opts.timeout)
    ctx.kubectl(
        "logs",
        "-f",
        f"job/{job}",
        "-n",
        ns,
        f"--pod-running-timeout={timeout}s",
        capture=False,
        check=False,
    )

    def finished() -> str | None:
        status = kube.get_json(ctx, "job", job, "-n", ns).get("status", {})
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

    kube.wait_for(ctx, f"job/{job} to finish", finished, timeout=timeout)
    ctx.console.info(f"job/{job} succeeded")


def first_run_hook(values: Mapping[str, Any]) -> bool:
    """Whether the chart trains once itself, in its post-install hook (on by default)."""
    training = values.get("training") or {}
    return bool(
        training.get("enabled", True) and (training.get("firstRun") or {}).get("enabled", True)
    )


def first_training(ctx: Ctx) -> None:
    if ctx.state.extra.get("revision") == 1 and first_run_hook(ctx.state.values):
        ctx.console.info(
            "the chart's post-install hook trained once already: skipped "
            f"(kubectl --context {ctx.context} -n {ctx.opts.namespace} logs "
            f"job/{ctx.opts.release}-training-first-run)"
        )
        return
    serving = kube.serving_deployment(ctx)
    if int(serving.get("status", {}).get("availableReplicas", 0) or 0) > 0:
        ctx.console.info(
            f"a model is already served: skipped (make train{ctx.make_env} trains again)"
        )
        return
    run_training(ctx)


def wait_release(ctx: Ctx) -> None:
    deployments = kube.items(ctx, "deployment", kube.release_selector(ctx.opts.release))
    if not deployments:
        raise StepFailed(f"release {ctx.opts.release} has no Deployment in {ctx.opts.namespace}")
    for dep in sorted(deployments, key=kube.name_of):
        rollout_status(ctx, kube.name_of(dep))


# --- ingress address, requests -----------------------------------------------------------------


def find_ingress_url(ctx: Ctx, timeout: float) -> str:
    ingresses = kube.items(ctx, "ingress", kube.release_selector(ctx.opts.release))
    if not ingresses:
        raise StepFailed(
            f"release {ctx.opts.release} has no Ingress (ingress disabled in the values?)",
            look=f"kubectl --context {ctx.context} -n {ctx.opts.namespace} get ingress",
        )
    name = kube.name_of(ingresses[0])

    def address() -> str | None:
        return kube.ingress_address(kube.get_json(ctx, "ingress", name, "-n", ctx.opts.namespace))

    addr = kube.wait_for(ctx, f"an address on ingress/{name}", address, timeout=timeout)
    url = f"http://{addr}"
    prefix = kube.ingress_path(ingresses[0])
    if ctx.opts.env == "kind" and ctx.host_os in ("darwin", "win32") and ctx.tools.get("docker"):
        # The address lives inside Docker's VM; cloud-provider-kind published the port instead.
        ports = ctx.run(
            "docker",
            "ps",
            "--filter",
            f"label=io.x-k8s.cloud-provider-kind.cluster={ctx.opts.cluster}",
            "--format",
            "{{.Ports}}",
        ).stdout
        for line in ports.splitlines():
            port = kube.published_port(line, 80)
            if port:
                url = f"http://127.0.0.1:{port}"
                break
    url += prefix
    ctx.state.ingress_url = url
    return url


def ingress_host_header(ctx: Ctx) -> dict[str, str]:
    """The Host the Ingress rule expects, when it names one."""
    ingresses = kube.items(ctx, "ingress", kube.release_selector(ctx.opts.release))
    for rule in (ingresses[0].get("spec", {}).get("rules") or []) if ingresses else []:
        if rule.get("host"):
            return {"Host": str(rule["host"])}
    return {}


def wait_ingress(ctx: Ctx) -> None:
    url = find_ingress_url(ctx, timeout=300)
    headers = ingress_host_header(ctx)
    ctx.state.extra["headers"] = headers

    def ready() -> bool | None:
        try:
            status, _ = ctx.http("GET", f"{url}/healthz/ready", None, headers)
        except OSError:
            return None
        return True if status == 200 else None

    kube.wait_for(ctx, f"{url}/healthz/ready to answer 200 through the Ingress", ready, timeout=180)
    ctx.console.info(f"serving answers through the Ingress at {url}")


def curl_example(url: str, headers: Mapping[str, str]) -> str:
    host = "".join(f" -H '{k}: {v}'" for k, v in headers.items())
    return (
        f"curl -s -X POST {url}/invocations -H 'Content-Type: application/json'{host} "
        f"-d '{json.dumps(SAMPLE_REQUEST)}'"
    )


def predict(ctx: Ctx) -> None:
    url = ctx.state.ingress_url or find_ingress_url(ctx, timeout=60)
    headers = {"Content-Type": "application/json", **ingress_host_header(ctx)}
    body = json.dumps(SAMPLE_REQUEST).encode()
    try:
        status, answer = ctx.http("POST", f"{url}/invocations", body, headers)
    except OSError as exc:
        raise StepFailed(f"{url}/invocations did not answer: {exc}") from exc
    text = answer.decode(errors="replace")
    if status != 200:
        raise StepFailed(f"POST {url}/invocations answered {status}: {text[:500]}")
    ctx.console.info(f"POST {url}/invocations -> {status}")
    ctx.console.info(f"request:  {json.dumps(SAMPLE_REQUEST)}")
    ctx.console.info(f"response: {text.strip()}")
    ctx.console.info("the same with curl:\n" + curl_example(url, ingress_host_header(ctx)))


def summary(ctx: Ctx) -> None:
    env = ctx.make_env
    url = ctx.state.ingress_url or "<ingress address>"
    ctx.console.text(
        f"\nmlkube is up in namespace {ctx.opts.namespace} (kube-context {ctx.context}).\n"
        f"  MLflow UI:    make ui{env}          then open http://127.0.0.1:{ctx.opts.port}\n"
        f"  Predict:      make predict{env}\n"
        f"                {curl_example(url, ctx.state.extra.get('headers', {}))}\n"
        f"  Train again:  make train ENV={ctx.opts.env}\n"
        f"  Status:       make status{env}\n"
        f"  Remove:       make destroy{env}"
    )


# --- other commands ------------------------------------------------------------------------


def port_forward_ui(ctx: Ctx) -> None:
    service, remote = kube.mlflow_service(ctx)
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
        kube.release_selector(opts.release),
        "-o",
        "wide",
        capture=False,
    )
    serving = kube.serving_deployment(ctx)
    status = serving.get("status", {})
    ctx.console.info(
        f"serving: model version {kube.pinned_version(serving) or '(alias, not pinned yet)'}, "
        f"{status.get('readyReplicas', 0)}/{serving.get('spec', {}).get('replicas', 1)} ready"
    )
    ingresses = kube.items(ctx, "ingress", kube.release_selector(opts.release))
    address = kube.ingress_address(ingresses[0]) if ingresses else None
    ctx.console.info(f"ingress: {address or 'no address yet'}")


def destroy_kind(ctx: Ctx) -> None:
    opts = ctx.opts
    if opts.cluster in kind_clusters(ctx):
        ctx.run("kind", "delete", "cluster", "--name", opts.cluster, capture=False)
    else:
        ctx.console.info(f"no kind cluster named {opts.cluster}")
    ours = ctx.run(
        "docker",
        "ps",
        "-a",
        "--filter",
        f"name=^/{CLOUD_PROVIDER_KIND_CONTAINER}$",
        "--format",
        "{{.Names}}",
    ).stdout.split()
    if not ours:
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


# --- planners --------------------------------------------------------------------------------

LOOK_PODS = f"{KUBECTL} get pods -l app.kubernetes.io/instance={{release}}; {KUBECTL} get events"


def plan_deploy(opts: Options) -> list[Step]:
    steps: list[Step] = []
    if opts.env == "kind":
        steps += [
            tools_step(("docker", "kind", "kubectl", "helm"), docker_daemon=True),
            Step(
                "cluster",
                f"kind cluster {opts.cluster}",
                ensure_kind_cluster,
                "kind get clusters; docker ps --filter label=io.x-k8s.kind.cluster={cluster}",
            ),
            Step(
                "ingress",
                "Ingress through cloud-provider-kind",
                ensure_kind_ingress,
                f"docker logs {CLOUD_PROVIDER_KIND_CONTAINER}; kubectl --context {{context}} "
                "get ingressclass,gatewayclass",
            ),
        ]
        if opts.build:
            steps += [
                Step("build", "Building images", build_images, "docker images 'mlkube-*'"),
                Step(
                    "load",
                    "Loading images into kind",
                    load_images,
                    "docker exec {cluster}-control-plane crictl images",
                ),
            ]
        else:
            steps.append(Step("images", "Images (not rebuilt)", planned_images))
    else:
        needs = ("docker", "kubectl", "helm") if opts.build else ("kubectl", "helm")
        steps += [
            tools_step(needs, docker_daemon=opts.build),
            Step("context", "EKS kube-context", resolve_eks_context, "kubectl config get-contexts"),
        ]
        if opts.build:
            steps += [
                Step("build", "Building images", build_images, "docker images"),
                Step(
                    "push",
                    f"Pushing images to {opts.registry}",
                    push_images,
                    "docker login <registry> (ECR: aws ecr get-login-password | docker login ...)",
                ),
            ]
        else:
            steps.append(Step("images", "Images (not rebuilt)", planned_images))
    steps += [
        Step(
            "release",
            f"helm upgrade --install {opts.release}",
            install_release,
            "helm --kube-context {context} -n {ns} status {release}; " + f"{KUBECTL} get events",
        ),
        Step(
            "mlflow",
            "Waiting for MLflow",
            wait_mlflow,
            f"{KUBECTL} describe pods -l app.kubernetes.io/component=mlflow; "
            f"{KUBECTL} logs -l app.kubernetes.io/component=mlflow",
        ),
    ]
    if opts.train:
        steps.append(
            Step(
                "train",
                "First training (a Job from the CronJob)",
                first_training,
                f"{KUBECTL} get jobs; {KUBECTL} logs -l job-name",
            )
        )
    steps += [
        Step(
            "rollout",
            "Waiting for every Deployment",
            wait_release,
            LOOK_PODS
            + "; serving pods stay unready until a model exists: make train ENV="
            + opts.env,
        ),
        Step(
            "address",
            "Waiting for the Ingress",
            wait_ingress,
            f"{KUBECTL} describe ingress; {KUBECTL} get gateway,httproute",
        ),
        Step("summary", "Next commands", summary),
    ]
    return steps


def plan_images(opts: Options) -> list[Step]:
    return [
        tools_step(("docker",), docker_daemon=True),
        Step("build", "Building images", build_images, "docker images 'mlkube-*'"),
    ]


def plan_destroy(opts: Options) -> list[Step]:
    if opts.env == "kind":
        return [
            tools_step(("docker", "kind"), docker_daemon=True),
            Step(
                "destroy",
                f"Deleting kind cluster {opts.cluster}",
                destroy_kind,
                "kind get clusters",
            ),
        ]
    return [
        tools_step(("kubectl", "helm"), docker_daemon=False),
        Step("context", "EKS kube-context", resolve_eks_context, "kubectl config get-contexts"),
        Step(
            "destroy",
            f"helm uninstall {opts.release}",
            destroy_eks,
            "helm --kube-context {context} -n {ns} status {release}",
        ),
    ]


def _cluster_steps(opts: Options, tools: tuple[str, ...] = ("kubectl",)) -> list[Step]:
    return [
        tools_step(tools, docker_daemon=False),
        Step("context", "kube-context", use_context, "kubectl config get-contexts"),
    ]


def plan_ui(opts: Options) -> list[Step]:
    return [
        *_cluster_steps(opts),
        Step(
            "ui",
            "Port-forward to the MLflow UI",
            port_forward_ui,
            f"{KUBECTL} get svc -l app.kubernetes.io/component=mlflow",
        ),
    ]


def plan_predict(opts: Options) -> list[Step]:
    return [
        *_cluster_steps(opts),
        Step(
            "predict",
            "A prediction through the Ingress",
            predict,
            f"{KUBECTL} describe ingress; {KUBECTL} logs -l app.kubernetes.io/component=serving",
        ),
    ]


def plan_status(opts: Options) -> list[Step]:
    return [
        *_cluster_steps(opts, ("kubectl", "helm")),
        Step("status", f"Release {opts.release}", show_status, LOOK_PODS),
    ]


def plan_train(opts: Options) -> list[Step]:
    return [
        *_cluster_steps(opts),
        Step(
            "train",
            "Training (a Job from the CronJob)",
            run_training,
            f"{KUBECTL} get cronjob,jobs",
        ),
    ]
