"""The release's objects, found through kubectl by their labels, and the plain reading of them
(an Ingress's address, a Service's port)."""

from __future__ import annotations

import json
from typing import Any

from deploy.context import Ctx
from deploy.shell import StepFailed
from mlkube.core.names import LABEL_MODEL_NAME

INSTANCE = "app.kubernetes.io/instance"
COMPONENT = "app.kubernetes.io/component"


def release_selector(release: str, component: str | None = None) -> str:
    selector = f"{INSTANCE}={release}"
    return f"{selector},{COMPONENT}={component}" if component else selector


def get_json(ctx: Ctx, *args: str) -> dict[str, Any]:
    out = ctx.kubectl("get", *args, "-o", "json").stdout
    return json_object(out, f"kubectl get {' '.join(args)}")


def json_object(out: str, command: str) -> dict[str, Any]:
    """``out`` (what ``command`` printed) as a JSON object; anything else fails the step."""
    try:
        data = json.loads(out)
    except json.JSONDecodeError as exc:
        raise StepFailed(f"{command} did not answer JSON: {out[:200]}") from exc
    if not isinstance(data, dict):
        raise StepFailed(f"{command} answered {type(data).__name__}")
    return data


def items(ctx: Ctx, kind: str, selector: str) -> list[dict[str, Any]]:
    found = get_json(ctx, kind, "-n", ctx.opts.namespace, "-l", selector).get("items", [])
    return [item for item in found if isinstance(item, dict)]


def name_of(obj: dict[str, Any]) -> str:
    return str(obj.get("metadata", {}).get("name", ""))


# --- the release's objects ---------------------------------------------------------------


def find_one(ctx: Ctx, kind: str, selector: str, what: str) -> dict[str, Any]:
    found = items(ctx, kind, selector)
    if not found:
        raise StepFailed(
            f"no {what} found ({kind} with labels {selector} in namespace {ctx.opts.namespace}); "
            "is the release installed? (make deploy)",
            look=f"kubectl --context {ctx.context} -n {ctx.opts.namespace} get {kind} "
            "--show-labels",
        )
    return sorted(found, key=name_of)[0]


def service_port(service: dict[str, Any], port_name: str = "http") -> int:
    """The port a Service exposes under ``port_name`` (the only one, when it has one)."""
    ports = [p for p in service.get("spec", {}).get("ports") or [] if isinstance(p, dict)]
    named = [p for p in ports if p.get("name") == port_name] or (ports if len(ports) == 1 else [])
    if not named or not str(named[0].get("port", "")).isdigit():
        listed = ", ".join(f"{p.get('name', '?')}:{p.get('port', '?')}" for p in ports) or "none"
        raise StepFailed(
            f"service/{name_of(service)} has no port named {port_name!r} (ports: {listed})"
        )
    return int(named[0]["port"])


def mlflow_service(ctx: Ctx) -> tuple[str, int]:
    """Name and `http` port of the MLflow Service (`mlflow.service.port` in the values)."""
    service = find_one(
        ctx, "service", release_selector(ctx.opts.release, "mlflow"), "MLflow Service"
    )
    return name_of(service), service_port(service)


def container_image(dep: dict[str, Any]) -> str:
    """The image of a Deployment's first container."""
    containers = dep.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []
    if not containers or not containers[0].get("image"):
        raise StepFailed(f"deployment/{name_of(dep)} has no container image")
    return str(containers[0]["image"])


def serving_deployment(ctx: Ctx) -> dict[str, Any]:
    # The operator finds serving Deployments by this label; so do we.
    return find_one(
        ctx,
        "deployment",
        f"{release_selector(ctx.opts.release)},{LABEL_MODEL_NAME}",
        "serving Deployment",
    )


def training_cronjob(ctx: Ctx) -> str:
    return name_of(find_one(ctx, "cronjob", release_selector(ctx.opts.release), "training CronJob"))


def ingress_address(ingress: dict[str, Any]) -> str | None:
    """The Ingress's load-balancer IP (cloud-provider-kind) or hostname (AWS ALB)."""
    for entry in ingress.get("status", {}).get("loadBalancer", {}).get("ingress") or []:
        address = entry.get("ip") or entry.get("hostname")
        if address:
            return str(address)
    return None


def ingress_path(ingress: dict[str, Any]) -> str:
    """The path prefix the Ingress routes (``""`` for ``/``), to put before ``/invocations``."""
    for rule in ingress.get("spec", {}).get("rules") or []:
        for path in (rule.get("http") or {}).get("paths") or []:
            return str(path.get("path") or "/").rstrip("/")
    return ""


def published_port(ports: str, container_port: int) -> int | None:
    """The host port that ``docker ps --format {{.Ports}}`` shows for ``container_port``:
    ``0.0.0.0:42381->80/tcp, [::]:42381->80/tcp`` gives 42381 for 80."""
    for part in ports.split(","):
        part = part.strip()
        if "->" not in part:
            continue
        host, target = part.split("->", 1)
        if target.split("/", 1)[0] != str(container_port):
            continue
        port = host.rsplit(":", 1)[-1]
        if port.isdigit():
            return int(port)
    return None
