"""Asking each serving replica what it serves, for the e2e test: a ``kubectl port-forward`` per
pod (stopped when the test ends), ``GET /model`` through it, and waiting until the operator's
rollout put one version on every replica."""

from __future__ import annotations

import json
from typing import Any

from deploy import objects
from deploy.context import Ctx, wait_for
from deploy.kubectl import Forward
from deploy.shell import Process, StepFailed
from mlkube.core.deployment import Phase, pinned_version, rollout_phase

SERVING_PORT = 8080


def model_version_of(payload: dict[str, Any]) -> str | None:
    """The version a serving replica says it has loaded (``GET /model``)."""
    for key in ("version", "model_version"):
        if payload.get(key) is not None:
            return str(payload[key])
    model = payload.get("model")
    return model_version_of(model) if isinstance(model, dict) else None


def port_forward(ctx: Ctx, target: str, remote: int) -> Forward:
    """``kubectl port-forward <target>`` on a free loopback port; stopped at the end."""
    forward = ctx.kube.port_forward(ctx.opts.namespace, target, remote)
    ctx.state.e2e.cleanups.append(forward.stop)
    return forward


def get_json_http(ctx: Ctx, url: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    status, body = ctx.http("GET", url, None, headers or {})
    if status != 200:
        raise StepFailed(f"GET {url} answered {status}: {body[:300]!r}")
    data = json.loads(body)
    if not isinstance(data, dict):
        raise StepFailed(f"GET {url} answered {type(data).__name__}, not a JSON object")
    return data


def wait_http(ctx: Ctx, proc: Process, url: str, what: str, timeout: float = 30) -> None:
    def answers() -> bool | None:
        if proc.poll() is not None:
            raise StepFailed(f"port-forward for {what} exited:\n{proc.output()[-2000:]}")
        try:
            status, _ = ctx.http("GET", url, None, {})
        except OSError:
            return None
        return True if status == 200 else None

    wait_for(ctx, f"{what} through its port-forward", answers, timeout=timeout, interval=0.5)


def serving_pods(ctx: Ctx, dep: dict[str, Any]) -> list[dict[str, Any]]:
    """The Deployment's live pods (terminating ones are leaving and excluded)."""
    match = dep.get("spec", {}).get("selector", {}).get("matchLabels", {})
    selector = ",".join(f"{k}={v}" for k, v in sorted(match.items()))
    pods = objects.items(ctx, "pod", selector)
    return [p for p in pods if not p.get("metadata", {}).get("deletionTimestamp")]


def replica_versions(ctx: Ctx, dep: dict[str, Any]) -> dict[str, str | None]:
    """What ``GET /model`` says on each replica, asked pod by pod through a port-forward."""
    versions: dict[str, str | None] = {}
    for pod in serving_pods(ctx, dep):
        name = objects.name_of(pod)
        forward = port_forward(ctx, f"pod/{name}", SERVING_PORT)
        try:
            wait_http(ctx, forward.proc, f"{forward.url}/healthz/live", f"pod/{name}")
            versions[name] = model_version_of(get_json_http(ctx, f"{forward.url}/model"))
        finally:
            forward.stop()
    return versions


def wait_served(ctx: Ctx, version: str, timeout: float) -> dict[str, str | None]:
    """Wait until the operator pinned ``version`` and the rollout completed, then ask every
    replica what it serves."""

    def rolled_out() -> dict[str, Any] | None:
        dep = objects.serving_deployment(ctx)
        if pinned_version(dep) == version and rollout_phase(dep) is Phase.COMPLETE:
            return dep
        return None

    dep = wait_for(
        ctx,
        f"the serving Deployment to roll out model version {version}",
        rolled_out,
        timeout=timeout,
    )
    versions = replica_versions(ctx, dep)
    wrong = {pod: v for pod, v in versions.items() if v != version}
    want = int(dep.get("spec", {}).get("replicas", 1))
    if wrong or len(versions) < want:
        raise StepFailed(f"expected version {version} on {want} replicas, /model says {versions}")
    return versions
