"""The way in: cloud-provider-kind serving Ingress on kind, the address the release's Ingress got,
and a prediction through it."""

from __future__ import annotations

import json
from collections.abc import Mapping

from deploy import objects
from deploy.context import Ctx, wait_for
from deploy.options import (
    CLOUD_PROVIDER_KIND_CONTAINER,
    CLOUD_PROVIDER_KIND_IMAGE,
    EXCLUDE_LB_LABEL,
    INGRESS_CLASS_KIND,
)
from deploy.shell import StepFailed

# Two Iris rows in MLflow's dataframe_split format, which /invocations accepts as
# `mlflow models serve` does; the columns are the training job's feature names.
SAMPLE_COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
SAMPLE_ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
SAMPLE_REQUEST = {"dataframe_split": {"columns": SAMPLE_COLUMNS, "data": SAMPLE_ROWS}}


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


def our_provider_exists(ctx: Ctx) -> bool:
    """Whether the cloud-provider-kind container `make deploy` starts exists (running or not)."""
    return bool(
        ctx.run(
            "docker",
            "ps",
            "-a",
            "--filter",
            f"name=^/{CLOUD_PROVIDER_KIND_CONTAINER}$",
            "--format",
            "{{.Names}}",
        ).stdout.split()
    )


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
        if our_provider_exists(ctx):
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

    wait_for(ctx, f"IngressClass {INGRESS_CLASS_KIND}", has_class, timeout=180)
    ctx.console.info(f"IngressClass {INGRESS_CLASS_KIND} ready")


def find_ingress_url(ctx: Ctx, timeout: float) -> str:
    ingresses = objects.items(ctx, "ingress", objects.release_selector(ctx.opts.release))
    if not ingresses:
        raise StepFailed(
            f"release {ctx.opts.release} has no Ingress (ingress disabled in the values?)",
            look=f"kubectl --context {ctx.context} -n {ctx.opts.namespace} get ingress",
        )
    name = objects.name_of(ingresses[0])

    def address() -> str | None:
        return objects.ingress_address(
            objects.get_json(ctx, "ingress", name, "-n", ctx.opts.namespace)
        )

    addr = wait_for(ctx, f"an address on ingress/{name}", address, timeout=timeout)
    url = f"http://{addr}"
    prefix = objects.ingress_path(ingresses[0])
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
            port = objects.published_port(line, 80)
            if port:
                url = f"http://127.0.0.1:{port}"
                break
    url += prefix
    ctx.state.ingress.url = url
    return url


def ingress_host_header(ctx: Ctx) -> dict[str, str]:
    """The Host the Ingress rule expects, when it names one."""
    ingresses = objects.items(ctx, "ingress", objects.release_selector(ctx.opts.release))
    for rule in (ingresses[0].get("spec", {}).get("rules") or []) if ingresses else []:
        if rule.get("host"):
            return {"Host": str(rule["host"])}
    return {}


def wait_ingress(ctx: Ctx) -> None:
    url = find_ingress_url(ctx, timeout=300)
    headers = ingress_host_header(ctx)
    ctx.state.ingress.headers = headers

    def ready() -> bool | None:
        try:
            status, _ = ctx.http("GET", f"{url}/healthz/ready", None, headers)
        except OSError:
            return None
        return True if status == 200 else None

    wait_for(ctx, f"{url}/healthz/ready to answer 200 through the Ingress", ready, timeout=180)
    ctx.console.info(f"serving answers through the Ingress at {url}")


def curl_example(url: str, headers: Mapping[str, str]) -> str:
    host = "".join(f" -H '{k}: {v}'" for k, v in headers.items())
    return (
        f"curl -s -X POST {url}/invocations -H 'Content-Type: application/json'{host} "
        f"-d '{json.dumps(SAMPLE_REQUEST)}'"
    )


def predict(ctx: Ctx) -> None:
    url = ctx.state.ingress.url or find_ingress_url(ctx, timeout=60)
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
