"""The rollout operator's test bench: a Kubernetes API emulator over real HTTP (kmock), a real
MLflow server (the session fixture), and the operator itself, running in a thread.

kmock's KubernetesEmulator stores objects and serves list/watch/get/patch/create, but keeps no
resourceVersion or generation and runs no controller. ``ClusterEmulator`` adds the two
behaviours the operator depends on (a patch carrying a stale resourceVersion gets 409; a spec
or annotation change bumps metadata.generation), and ``Cluster`` plays the Deployment
controller on demand (rollout complete, or ProgressDeadlineExceeded). Label selectors are still
ignored: the operator filters labels in code.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import attrs
import jsonpatch
import kmock
import pytest
from aiohttp import web
from mlflow import MlflowClient

from mlkube.core.processes import free_port
from rollout.app import Operator
from rollout.settings import OperatorSettings
from tests.timeouts import EVENTUAL_S, POLL_S, PROCESS_STOP_S

DEPLOYMENTS = kmock.resource("apps", "v1", "deployments")
EVENTS = kmock.resource("", "v1", "events")
PODS = kmock.resource("", "v1", "pods")
NAMESPACE = "serving"
OPERATOR_AGENTS = ("mlkube-rollout/", "kopf/")


def _merge(base: Any, patch: Any) -> Any:
    if not isinstance(base, dict) or not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(base)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge(base.get(key), value)
    return result


def _apply(obj: dict[str, Any], data: Any) -> dict[str, Any]:
    if isinstance(data, list):
        patched: dict[str, Any] = jsonpatch.apply_patch(obj, data, in_place=False)
        return patched
    merged: dict[str, Any] = _merge(obj, data or {})
    return merged


@attrs.define(kw_only=True)
class ClusterEmulator(kmock.KubernetesEmulator):
    """KubernetesEmulator + optimistic concurrency and generations for Deployments."""

    inject_conflicts: int = 0  # answer the operator's next N Deployment patches with 409
    # Answer the operator's Deployment patches with 403, as a denying admission webhook does.
    deny_patches: str | None = None
    # Writes by someone else, each applied just before the operator's next Deployment patch
    # reaches the store: the operator's patch then meets an object it did not read.
    concurrent_edits: list[Callable[[dict[str, Any]], None]] = attrs.field(factory=list)

    async def _handle(self, request: kmock.Request) -> Any:
        if (
            request.action == kmock.action.UPDATE
            and request.resource == DEPLOYMENTS
            and request.name is not None
            and (DEPLOYMENTS, request.namespace, request.name) in self.objects
        ):
            key = (DEPLOYMENTS, request.namespace, request.name)
            agent = request.headers.get("User-Agent", "")
            if self.concurrent_edits and agent.startswith(OPERATOR_AGENTS):
                edited = copy.deepcopy(self.objects[key].raw)
                self.concurrent_edits.pop(0)(edited)
                meta = edited["metadata"]
                meta["resourceVersion"] = str(int(meta.get("resourceVersion") or "0") + 1)
                self.objects[key] = edited
            stored = self.objects[key]
            if not stored.deleted:
                self._version(request, stored.raw)
        return await super()._handle(request)

    def _version(self, request: kmock.Request, old: dict[str, Any]) -> None:
        old_meta = old.get("metadata", {})
        agent = request.headers.get("User-Agent", "")
        if self.deny_patches and agent.startswith(OPERATOR_AGENTS):
            raise kmock.KubernetesError(403, "Forbidden", self.deny_patches)
        if self.inject_conflicts and agent.startswith(OPERATOR_AGENTS):
            self.inject_conflicts -= 1
            raise kmock.KubernetesError(409, "Conflict", "the object has been modified (test)")
        try:
            new = _apply(old, request.data)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
            # As the real API server answers any JSON patch that does not apply (a failed
            # `test` op included): 422 with a generic message that names no op.
            raise kmock.KubernetesError(
                422, "Invalid", "the server rejected our request due to an error in our request"
            ) from exc
        old_version = old_meta.get("resourceVersion")
        if old_version and new.get("metadata", {}).get("resourceVersion") != old_version:
            raise kmock.KubernetesError(409, "Conflict", "the object has been modified")
        extra: dict[str, Any] = {"resourceVersion": str(int(old_version or "0") + 1)}
        # Kubernetes' rule for Deployments: spec *or annotation* changes bump the generation
        # (pkg/registry/apps/deployment/strategy.go), the operator's own record writes too.
        new_meta = new.get("metadata", {})
        if new.get("spec") != old.get("spec") or new_meta.get("annotations") != old_meta.get(
            "annotations"
        ):
            extra["generation"] = int(old_meta.get("generation") or 0) + 1
        data = request.data
        if isinstance(data, list):
            data = [*data] + [
                {"op": "add", "path": f"/metadata/{k}", "value": v} for k, v in extra.items()
            ]
        else:
            data = _merge(data or {}, {"metadata": extra})
        # kmock matches reactions against the very request object it recorded: rewrite it in
        # place (a copy would match no reaction).
        object.__setattr__(request, "data", data)


def deployment(
    name: str,
    model_name: str,
    version: str | None = "1",
    *,
    alias: str | None = None,
    status: str | None = "succeeded",
) -> dict[str, Any]:
    """A realistic serving Deployment (plenty of fields the operator must leave alone)."""
    env = [
        {"name": "MLFLOW_TRACKING_URI", "value": "http://mlkube-mlflow:5000"},
        {"name": "MODEL_NAME", "value": model_name},
        {"name": "SERVE_PORT", "value": "8080"},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
    ]
    annotations: dict[str, str] = {"checksum/config": "abc123"}
    if version is not None:
        env.insert(2, {"name": "MODEL_VERSION", "value": version})
        annotations["mlkube.io/model-version"] = version
    meta_annotations = {"deployment.kubernetes.io/revision": "3"}
    if alias:
        meta_annotations["mlkube.io/model-alias"] = alias
    if status:
        meta_annotations["mlkube.io/rollout-status"] = status
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "uid": f"uid-{name}",
            "resourceVersion": "100",
            "generation": 3,
            "labels": {
                "app.kubernetes.io/name": "mlkube",
                "app.kubernetes.io/component": "serving",
                "mlkube.io/model-name": model_name,
            },
            "annotations": meta_annotations,
        },
        "spec": {
            "replicas": 2,
            "progressDeadlineSeconds": 120,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": {"app.kubernetes.io/component": "serving"}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {
                    "labels": {"app.kubernetes.io/component": "serving"},
                    "annotations": annotations,
                },
                "spec": {
                    "serviceAccountName": "mlkube-serving",
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
                    "containers": [
                        {
                            "name": "serving",
                            "image": "mlkube-serve:0.1.0",
                            "args": ["python", "-m", "service"],
                            "env": env,
                            "ports": [{"name": "http", "containerPort": 8080}],
                            "readinessProbe": {
                                "httpGet": {"path": "/healthz/ready", "port": "http"}
                            },
                            "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}},
                            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                        },
                        {
                            "name": "log-shipper",
                            "image": "fluent-bit:3",
                            "env": [{"name": "LEVEL", "value": "info"}],
                        },
                    ],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            },
        },
        "status": _complete_status(3, 2),
    }


def _complete_status(generation: int, replicas: int) -> dict[str, Any]:
    return {
        "observedGeneration": generation,
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": replicas,
        "availableReplicas": replicas,
        "conditions": [
            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
        ],
    }


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class PodEndpoints:
    """What the emulated pods answer on ``GET /healthz/ready``: every pod is at 127.0.0.1, on
    the port of the version it was created with (versions 1-3, and "" for unpinned pods)."""

    VERSIONS = ("", "1", "2", "3")

    def __init__(self) -> None:
        self.answers: dict[str, tuple[int, dict[str, Any]]] = {}
        self.metrics: dict[str, str] = {}  # GET /metrics by version (default: empty)
        self.ports: dict[str, int] = {}
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        async def ready(request: web.Request) -> web.Response:
            port = request.transport.get_extra_info("sockname")[1]  # type: ignore[union-attr]
            version = next(v for v, p in self.ports.items() if p == port)
            status, body = self.answers.get(
                version, (200, {"status": "ready", "model_version": version})
            )
            return web.json_response(body, status=status)

        async def metrics(request: web.Request) -> web.Response:
            port = request.transport.get_extra_info("sockname")[1]  # type: ignore[union-attr]
            version = next(v for v, p in self.ports.items() if p == port)
            return web.Response(text=self.metrics.get(version, ""))

        app = web.Application()
        app.router.add_get("/healthz/ready", ready)
        app.router.add_get("/metrics", metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        for version in self.VERSIONS:
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            self.ports[version] = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@dataclass
class Cluster:
    """The emulator, its URL, and the moves of the Deployment controller that tests need."""

    api: ClusterEmulator
    url: str
    kubeconfig: Path
    endpoints: PodEndpoints = field(default_factory=PodEndpoints)

    def add(self, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        self.api.objects[DEPLOYMENTS, meta["namespace"], meta["name"]] = body

    def get(self, name: str, namespace: str = NAMESPACE) -> dict[str, Any]:
        obj: dict[str, Any] = copy.deepcopy(self.api.objects[DEPLOYMENTS, namespace, name].raw)
        return obj

    def exists(self, name: str, namespace: str = NAMESPACE) -> bool:
        key = (DEPLOYMENTS, namespace, name)
        return key in self.api.objects and not self.api.objects[key].deleted

    def model_version(self, name: str, namespace: str = NAMESPACE) -> str | None:
        containers = self.get(name, namespace)["spec"]["template"]["spec"]["containers"]
        for var in containers[0].get("env") or []:
            if var["name"] == "MODEL_VERSION":
                return str(var.get("value"))
        return None

    async def patch(self, name: str, body: dict[str, Any]) -> None:
        """A write by someone else (the test, the controller): a merge patch over HTTP, so
        watchers get the MODIFIED event."""
        path = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{name}"
        async with self.api.patch(path, json=body) as response:
            assert response.status == 200, await response.text()

    async def delete(self, name: str) -> None:
        path = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{name}"
        async with self.api.delete(path) as response:
            assert response.status == 200, await response.text()

    def set_pods(self, name: str, *pods: dict[str, Any]) -> None:
        """Replace the Deployment's pods (as its ReplicaSets would have made them)."""
        for key in [k for k in self.api.objects if k[0] == PODS]:
            if self.api.objects[key].raw["metadata"].get("ownerName") == name:
                del self.api.objects[key]
        for index, pod in enumerate(pods):
            pod["metadata"]["name"] = f"{name}-{index}"
            pod["metadata"]["ownerName"] = name
            self.api.objects[PODS, NAMESPACE, pod["metadata"]["name"]] = pod

    def pod(
        self,
        name: str,
        version: str | None,
        *,
        ready: bool = True,
        unschedulable: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """A pod of the Deployment ``name`` running ``version``; its /healthz/ready answers as
        ``endpoints.answers[version]`` says (default: ready, serving it)."""
        template = copy.deepcopy(self.get(name)["spec"]["template"])
        serving = template["spec"]["containers"][0]
        env = [v for v in serving.get("env", []) if v["name"] != "MODEL_VERSION"]
        if version is not None:
            env.append({"name": "MODEL_VERSION", "value": version})
        serving["env"] = env
        port = self.endpoints.ports[version or ""]
        serving["ports"] = [{"name": "http", "containerPort": port}]
        conditions = [{"type": "Ready", "status": "True" if ready else "False"}]
        status: dict[str, Any] = {"phase": "Running", "podIP": "127.0.0.1"}
        if unschedulable:
            status = {"phase": "Pending"}
            conditions = [{"type": "PodScheduled", "status": "False",
                           "reason": "Unschedulable", "message": unschedulable}]  # fmt: skip
        status["conditions"] = conditions
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "namespace": NAMESPACE,
                "labels": {**template["metadata"]["labels"], **(labels or {})},
            },
            "spec": template["spec"],
            "status": status,
        }

    async def complete_rollout(self, name: str) -> None:
        obj = self.get(name)
        replicas = obj["spec"].get("replicas", 1)
        version = self.model_version(name)
        self.set_pods(name, *[self.pod(name, version) for _ in range(replicas)])
        await self.patch(
            name, {"status": _complete_status(obj["metadata"]["generation"], replicas)}
        )

    async def miss_deadline(self, name: str) -> None:
        obj = self.get(name)
        await self.patch(
            name,
            {
                "status": {
                    "observedGeneration": obj["metadata"]["generation"],
                    "replicas": 3,
                    "updatedReplicas": 1,
                    "availableReplicas": 2,
                    "unavailableReplicas": 1,
                    "conditions": [
                        {"type": "Available", "status": "True"},
                        {
                            "type": "Progressing",
                            "status": "False",
                            "reason": "ProgressDeadlineExceeded",
                            "message": 'ReplicaSet "serving-7d9" has timed out progressing.',
                            "lastUpdateTime": _now(),
                            "lastTransitionTime": _now(),
                        },
                    ],
                }
            },
        )

    deployment = staticmethod(deployment)

    @staticmethod
    async def eventually(
        check: Callable[[], Any],
        timeout: float = EVENTUAL_S,
        interval: float = POLL_S,
        what: str = "",
    ) -> float:
        """Poll ``check`` until it is truthy; returns the seconds it took, fails after timeout.
        Wait for the very thing the test asserts next: a metric, an Event or a tag comes after
        the patch that made the Deployment look done."""
        start = time.monotonic()
        while True:
            with contextlib.suppress(AssertionError, KeyError):
                if check():
                    return time.monotonic() - start
            if time.monotonic() - start > timeout:
                raise AssertionError(f"not within {timeout}s: {what or check}")
            await asyncio.sleep(interval)

    # -- what the operator did -------------------------------------------------------------

    def operator_requests(self) -> list[kmock.Request]:
        return [
            r
            for r in self.api._requests
            if r.headers.get("User-Agent", "").startswith(OPERATOR_AGENTS)
        ]

    def operator_writes(self) -> list[kmock.Request]:
        return [r for r in self.operator_requests() if r.method.value != "GET"]

    def deployment_patches(self, name: str) -> list[kmock.Request]:
        return [
            r
            for r in self.operator_writes()
            if r.resource == DEPLOYMENTS and r.name == name and r.method.value == "PATCH"
        ]

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        found = []
        for (resource, _, _), obj in self.api.objects.items():
            if resource == EVENTS and not obj.deleted:
                raw = obj.raw
                if name is None or raw["involvedObject"]["name"] == name:
                    found.append(raw)
        return found

    def event_reasons(self, name: str) -> list[str]:
        return [e["reason"] for e in self.events(name)]


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with ClusterEmulator() as api, kmock.Server(api) as server:
        api.resources["apps/v1/deployments"] = kmock.ResourceInfo(
            kind="Deployment",
            singular="deployment",
            namespaced=True,
            verbs={"get", "list", "watch", "patch", "create", "delete"},
        )
        api.resources["v1/events"] = kmock.ResourceInfo(
            kind="Event", singular="event", namespaced=True, verbs={"create", "list"}
        )
        api.resources["v1/pods"] = kmock.ResourceInfo(
            kind="Pod", singular="pod", namespaced=True, verbs={"get", "list"}
        )
        api.resources["v1/namespaces"] = kmock.ResourceInfo(
            kind="Namespace", singular="namespace", namespaced=False, verbs={"list", "watch"}
        )
        url = str(server.url).rstrip("/")
        kubeconfig = tmp_path / "kubeconfig"
        context = {"cluster": "emulator", "user": "tester", "namespace": NAMESPACE}
        kubeconfig.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "emulator", "cluster": {"server": url}}],
                    "users": [{"name": "tester", "user": {"token": "test-token"}}],
                    "contexts": [{"name": "emulator", "context": context}],
                    "current-context": "emulator",
                }
            )
        )
        endpoints = PodEndpoints()
        await endpoints.start()
        try:
            yield Cluster(api=api, url=url, kubeconfig=kubeconfig, endpoints=endpoints)
        finally:
            await endpoints.stop()


class RunningOperator:
    """``Operator.run()`` in its own thread and event loop, stopped by its stop flag (as kopf
    stops on SIGTERM in a pod). Joined without blocking the emulator's loop."""

    def __init__(self, settings: OperatorSettings, kubeconfig: Path) -> None:
        self.settings = settings
        self.kubeconfig = kubeconfig
        self.liveness_port = free_port()
        self.operator: Operator | None = None
        self.poll_cycles = 0  # poll cycles finished so far (see polls())
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="operator", daemon=True)

    def _main(self) -> None:
        try:
            self.operator = Operator(
                self.settings,
                kubeconfig=str(self.kubeconfig),
                liveness=f"http://127.0.0.1:{self.liveness_port}/healthz",
                http_host="127.0.0.1",
            )
            self._count_polls(self.operator)
            run = self.operator.run(stop_flag=self._stop, ready_flag=self._ready)  # type: ignore[arg-type]
            asyncio.run(run)
        except BaseException as exc:  # surfaced by start()/stop()
            self._error = exc
            self._ready.set()

    def _count_polls(self, operator: Operator) -> None:
        poll_once = operator.poll_once

        async def counted() -> None:
            try:
                await poll_once()
            finally:
                self.poll_cycles += 1

        operator.poll_once = counted  # type: ignore[method-assign]

    async def polls(self, count: int) -> None:
        """Wait until ``count`` whole poll cycles have run from now on (a cycle under way now
        does not count): what "nothing more happens" means for a test, not a sleep."""
        target = self.poll_cycles + 1 + count
        await Cluster.eventually(
            lambda: self.poll_cycles >= target, what=f"{count} more poll cycles"
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.http_port}"

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    async def start(self) -> RunningOperator:
        self._thread.start()
        await asyncio.to_thread(self._ready.wait, EVENTUAL_S)
        if self._error is not None:
            raise self._error
        return self

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.to_thread(self._thread.join, PROCESS_STOP_S)
        assert not self._thread.is_alive(), f"operator did not stop within {PROCESS_STOP_S} s"
        if self._error is not None:
            raise self._error

    def metric(self, name: str, **labels: str) -> float:
        assert self.operator is not None
        value = self.operator.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


@pytest.fixture
def operator_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # As `python -m rollout` does: one quick try per MLflow call, the operator backs off itself.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")


@pytest.fixture
async def start_operator(
    cluster: Cluster, tracking_uri: str, operator_env: None
) -> AsyncIterator[Callable[..., Awaitable[RunningOperator]]]:
    """``await start_operator(ROLLOUT_POLL_SECONDS=1, ...)``; all are stopped at teardown."""
    running: list[RunningOperator] = []

    async def start(**overrides: Any) -> RunningOperator:
        values: dict[str, Any] = {
            "MLFLOW_TRACKING_URI": tracking_uri,
            "ROLLOUT_POLL_SECONDS": 1.0,
            "ROLLOUT_HTTP_PORT": free_port(),
            "ROLLOUT_NAMESPACE": NAMESPACE,
            "ROLLOUT_WEBHOOK_SECRET": "test-secret",
            "LOG_LEVEL": "DEBUG",
        }
        values.update(overrides)
        operator = RunningOperator(OperatorSettings(**values), cluster.kubeconfig)
        running.append(operator)
        return await operator.start()

    yield start
    for operator in running:
        if operator.running:
            await operator.stop()


@dataclass
class Model:
    """A registered model with three versions, and the alias moves the tests make."""

    client: MlflowClient
    name: str
    versions: list[str] = field(default_factory=list)

    async def set_alias(self, version: str, alias: str = "production") -> None:
        await asyncio.to_thread(self.client.set_registered_model_alias, self.name, alias, version)

    def tag(self, version: str, deployment: str = "iris-serving") -> str | None:
        """This Deployment's verdict on ``version`` (``mlkube.rollout/<namespace>/<name>``)."""
        tags = self.client.get_model_version(self.name, version).tags
        return tags.get(f"mlkube.rollout/{NAMESPACE}/{deployment}")

    async def eventually_tagged(
        self, version: str, value: str, timeout: float = EVENTUAL_S
    ) -> None:
        """Wait for ``mlkube.rollout/serving/iris-serving=<value>`` on the version (asked off
        the event loop, which also serves the emulator)."""
        deadline = time.monotonic() + timeout
        while (found := await asyncio.to_thread(self.tag, version)) != value:
            assert time.monotonic() < deadline, f"version {version} tagged {found!r}, not {value}"
            await asyncio.sleep(POLL_S)


@pytest.fixture
def model(tracking_uri: str, model_name: str) -> Model:
    """Versions 1-3 of ``model_name`` (no model files: the operator only pins versions)."""
    client = MlflowClient(tracking_uri)
    client.create_registered_model(model_name)
    run = client.create_run("0")
    client.set_terminated(run.info.run_id)
    source = f"runs:/{run.info.run_id}/model"
    versions = [
        str(client.create_model_version(model_name, source, run_id=run.info.run_id).version)
        for _ in range(3)
    ]
    return Model(client, model_name, versions)
