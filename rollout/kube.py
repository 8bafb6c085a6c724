"""Kubernetes access for the operator, through the official client, on plain dicts.

The calls here (and kopf's watch) are the whole of the operator's API use; ``rollout.rbac``
lists them for the chart's Role, and a test compares the two.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import kopf
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from mlkube.core.deployment import serving_containers
from mlkube.core.names import ENV_MODEL_VERSION
from rollout import __version__
from rollout.canary import LABEL_CANARY_OF
from rollout.diagnosis import PodView
from rollout.patches import JsonPatch
from rollout.plan import Event

log = logging.getLogger(__name__)

USER_AGENT = f"mlkube-rollout/{__version__}"
COMPONENT = "mlkube-rollout"
IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
TIMEOUT = (5.0, 30.0)  # connect, read


class Conflict(RuntimeError):
    """The Deployment changed under us (409, or a failed JSON-patch ``test``): re-read."""


class PatchRejected(RuntimeError):
    """The API server refused the patch itself: 422 on an object that did not change, or an
    admission denial / missing permission (400, 403). Sending it again as it is cannot help;
    the message carries the server's reason."""


PROBE_TIMEOUT = 2.0  # seconds for one GET /healthz/ready of a pod
MAX_PROBES = 6  # pods asked per reconcile
READY_PATH = "/healthz/ready"
METRICS_PATH = "/metrics"


# What the API server answers (422, no causes) when a JSON patch does not apply to the current
# object, a failed ``test`` op included: the failing op is not named (apiserver's
# NewGenericServerResponse keeps only this text).
PATCH_DID_NOT_APPLY = "the server rejected our request due to an error in our request"
# Servers (and emulators) that do pass the JSON-patch library's error on: "testing value /x
# failed: test failed", "test operation does not apply: is missing path: /x".
TEST_OP_FAILED = re.compile(r"\btest(ing value \S+)? failed\b|\btest operation\b", re.IGNORECASE)


def load_configuration(kubeconfig: str | None) -> client.Configuration:
    """The connection settings: ``kubeconfig`` when given, else in-cluster, else the default
    kubeconfig ($KUBECONFIG or ~/.kube/config), as kubectl does."""
    configuration = client.Configuration()
    if kubeconfig:
        if not Path(kubeconfig).is_file():
            raise ConfigException(f"--kubeconfig {kubeconfig}: no such file")
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, client_configuration=configuration
        )
        return configuration
    try:
        config.load_incluster_config(  # type: ignore[no-untyped-call]
            client_configuration=configuration
        )
    except ConfigException:
        config.load_kube_config(  # type: ignore[no-untyped-call]
            client_configuration=configuration
        )
    return configuration


def default_namespace(kubeconfig: str | None) -> str:
    """The namespace to watch when none is given: ours in a pod, else the kubeconfig context's."""
    if not kubeconfig and IN_CLUSTER_NAMESPACE.is_file():
        return IN_CLUSTER_NAMESPACE.read_text().strip() or "default"
    try:
        _, current = config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
            config_file=kubeconfig
        )
    except (ConfigException, OSError):
        return "default"
    return str((current or {}).get("context", {}).get("namespace") or "default")


def connection_info(configuration: client.Configuration) -> kopf.ConnectionInfo:
    """kopf's credentials from the same configuration the client uses (one source of truth)."""
    header = configuration.get_api_key_with_prefix(
        "BearerToken"
    ) or configuration.get_api_key_with_prefix("authorization")
    parts = header.split(" ", 1) if header else []
    scheme, token = (
        (None, None) if not parts else (None, parts[0]) if len(parts) == 1 else (parts[0], parts[1])
    )
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        username=configuration.username or None,
        password=configuration.password or None,
        scheme=scheme,
        token=token,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
    )


def _status_of(exc: ApiException) -> tuple[str, list[str]]:
    """The message and the causes (``field: message``) of the API server's Status answer."""
    try:
        status = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        return str(exc.body or exc.reason or ""), []
    if not isinstance(status, dict):
        return str(status), []
    causes = [
        f"{c.get('field', '')}: {c.get('message', '')}".strip(": ")
        for c in ((status.get("details") or {}).get("causes") or [])
        if isinstance(c, dict)
    ]
    return str(status.get("message") or exc.reason or ""), causes


def _precondition(ops: JsonPatch) -> str | None:
    """The resourceVersion the patch was made against (plan.with_precondition's first op)."""
    for op in ops:
        if op.get("path") == "/metadata/resourceVersion" and op.get("op") in ("replace", "test"):
            return str(op.get("value"))
    return None


class Kube:
    """Deployments read and JSON-patched as dicts; Events created. Nothing else."""

    def __init__(self, configuration: client.Configuration) -> None:
        self.api_client = client.ApiClient(configuration)
        self.api_client.user_agent = USER_AGENT
        self._apps = client.AppsV1Api(self.api_client)
        self._core = client.CoreV1Api(self.api_client)
        self._instance = os.environ.get("HOSTNAME") or socket.gethostname()

    def close(self) -> None:
        self.api_client.close()  # type: ignore[no-untyped-call]

    def read(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Deployment, or None when it is gone."""
        try:
            response = self._apps.read_namespaced_deployment(
                name, namespace, _preload_content=False, _request_timeout=TIMEOUT
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        data: dict[str, Any] = json.loads(cast(Any, response).data)
        return data

    def patch(self, namespace: str, name: str, ops: JsonPatch) -> dict[str, Any] | None:
        """Apply a JSON patch (RFC 6902): it changes exactly the paths it names, nothing else.

        Raises Conflict when someone wrote first: 409 (the resourceVersion precondition), or a
        failed ``test`` op (422). Raises PatchRejected for any other 422 (e.g. the patched object
        is invalid). Returns None when the object is gone."""
        try:
            response = self._apps.patch_namespaced_deployment(
                name,
                namespace,
                ops,
                _preload_content=False,
                _request_timeout=TIMEOUT,
                _content_type="application/json-patch+json",
            )
        except ApiException as exc:
            where = f"{namespace}/{name}"
            if exc.status == 409:
                raise Conflict(f"{where}: 409 {exc.reason}") from exc
            if exc.status == 404:
                return None
            if exc.status in (400, 403):  # an admission webhook or policy said no; or RBAC
                message, causes = _status_of(exc)
                detail = "; ".join([message, *causes])
                raise PatchRejected(f"{where}: {exc.status} {exc.reason}: {detail}") from exc
            if exc.status == 422:
                message, causes = _status_of(exc)
                if TEST_OP_FAILED.search(message):
                    raise Conflict(f"{where}: a JSON-patch test failed: {message}") from exc
                if message == PATCH_DID_NOT_APPLY and not causes:
                    # Did a test op fail, or is the patch wrong? Our ops were made from the object
                    # at the resourceVersion they carry: if it moved on, someone wrote first.
                    now = self.read(namespace, name)
                    if now is None:
                        return None
                    expected = _precondition(ops)
                    current = (now.get("metadata") or {}).get("resourceVersion")
                    if expected is not None and current != expected:
                        raise Conflict(
                            f"{where}: changed under us (resourceVersion {expected} -> "
                            f"{current}), so the patch's tests failed"
                        ) from exc
                    message += " (the patch does not apply to the unchanged object)"
                detail = "; ".join([message, *causes])
                raise PatchRejected(f"{where}: 422 {exc.reason}: {detail}") from exc
            raise
        data: dict[str, Any] = json.loads(cast(Any, response).data)
        return data

    def emit(self, deployment: Mapping[str, Any], event: Event) -> None:
        """Create a core/v1 Event on the Deployment (``kubectl describe`` shows it)."""
        meta = deployment.get("metadata") or {}
        namespace = meta.get("namespace") or "default"
        now = dt.datetime.now(dt.UTC)
        stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                # Explicit unique name (as kubectl's recorder does), not generateName.
                "name": f"{meta.get('name')}.{time.time_ns():x}",
                "namespace": namespace,
            },
            "involvedObject": {
                "apiVersion": deployment.get("apiVersion", "apps/v1"),
                "kind": deployment.get("kind", "Deployment"),
                "name": meta.get("name"),
                "namespace": namespace,
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": event.type,
            "reason": event.reason,
            "message": event.message[:1024],
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": self._instance,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        self._core.create_namespaced_event(
            namespace, cast(Any, body), _preload_content=False, _request_timeout=TIMEOUT
        )

    def list_labelled(self, namespaces: tuple[str, ...], label: str) -> list[dict[str, Any]]:
        """A fresh list of the Deployments carrying ``label`` (in ``namespaces``, or all when
        empty): the poll loop's resync, never the watch's cached bodies."""
        found: list[dict[str, Any]] = []
        answers: list[Any] = []
        options: dict[str, Any] = {
            "label_selector": label,
            "_preload_content": False,
            "_request_timeout": TIMEOUT,
        }
        if namespaces:
            for namespace in namespaces:
                answers.append(self._apps.list_namespaced_deployment(namespace, **options))
        else:
            answers.append(self._apps.list_deployment_for_all_namespaces(**options))
        for answer in answers:
            data = json.loads(answer.data)
            for item in data.get("items") or []:
                item.setdefault("apiVersion", "apps/v1")
                item.setdefault("kind", "Deployment")
                found.append(item)
        return found

    def pods(self, deployment: Mapping[str, Any], probe_ready: bool = True) -> list[PodView]:
        """The Deployment's pods, with what ``GET /healthz/ready`` says on those that can tell
        why they do (not) serve (a few per reconcile)."""
        views = []
        budget = {False: MAX_PROBES, True: 2}  # not ready pods say why; two ready ones, what
        for pod in self.raw_pods(deployment):
            view = pod_view(pod)
            if probe_ready and budget[view.ready] > 0 and (pod.get("status") or {}).get("podIP"):
                budget[view.ready] -= 1
                view = replace(view, ready_detail=self.probe(pod))
            views.append(view)
        return views

    def raw_pods(self, deployment: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The Deployment's pods as the API server has them (matchLabels checked here too)."""
        meta = deployment.get("metadata") or {}
        match = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        selector = ",".join(f"{k}={v}" for k, v in sorted(match.items()))
        response = self._core.list_namespaced_pod(
            meta.get("namespace") or "default",
            label_selector=selector,
            _preload_content=False,
            _request_timeout=TIMEOUT,
        )
        items = json.loads(cast(Any, response).data).get("items") or []
        return [
            pod
            for pod in items
            if all(
                ((pod.get("metadata") or {}).get("labels") or {}).get(k) == v
                for k, v in match.items()
            )
            and not (pod.get("metadata") or {}).get("deletionTimestamp")
        ]

    def scrape(self, pod: Mapping[str, Any]) -> str | None:
        """The pod's ``GET /metrics`` (Prometheus text), None when it does not answer."""
        data = self._get(pod, METRICS_PATH, 1 << 22)
        return None if data is None else data.decode(errors="replace")

    def create_deployment(self, body: Mapping[str, Any]) -> None:
        """Create ``body`` (the canary); one left over from an earlier canary is replaced."""
        meta = body.get("metadata") or {}
        namespace, name = meta.get("namespace") or "default", str(meta.get("name"))
        try:
            self._apps.create_namespaced_deployment(
                namespace, cast(Any, body), _preload_content=False, _request_timeout=TIMEOUT
            )
        except ApiException as exc:
            if exc.status != 409:
                raise
            self.delete_deployment(namespace, name)
            self._apps.create_namespaced_deployment(
                namespace, cast(Any, body), _preload_content=False, _request_timeout=TIMEOUT
            )

    def delete_deployment(self, namespace: str, name: str) -> None:
        """Delete a Deployment (the canary) and its pods; gone already is fine."""
        try:
            self._apps.delete_namespaced_deployment(
                name,
                namespace,
                propagation_policy="Background",
                _preload_content=False,
                _request_timeout=TIMEOUT,
            )
        except ApiException as exc:
            if exc.status != 404:
                raise

    def _get(self, pod: Mapping[str, Any], path: str, limit: int) -> bytes | None:
        ip = (pod.get("status") or {}).get("podIP")
        port = serving_port(pod)
        if not ip or port is None:
            return None
        host = f"[{ip}]" if ":" in ip else ip
        request = urllib.request.Request(
            f"http://{host}:{port}{path}", headers={"User-Agent": USER_AGENT}
        )
        try:
            with _DIRECT.open(request, timeout=PROBE_TIMEOUT) as answer:
                data: bytes = answer.read(limit)
        except urllib.error.HTTPError as exc:  # 503 while loading: the body says why
            data = exc.read(limit)
        except (OSError, ValueError) as exc:
            log.debug("GET %s of pod %s failed: %s", path, ip, exc)
            return None
        return data

    def probe(self, pod: Mapping[str, Any]) -> dict[str, Any] | None:
        """``GET /healthz/ready`` of the pod (its JSON, 200 or 503), None when it gives none."""
        data = self._get(pod, READY_PATH, 65536)
        if data is None:
            return None
        try:
            parsed = json.loads(data)
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None


# Pod IPs are never reached through an environment HTTP proxy.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def serving_port(pod: Mapping[str, Any]) -> int | None:
    """The serving container's port named ``http``, else its first port."""
    found = list(((pod.get("spec") or {}).get("containers")) or [])
    for index in serving_containers({"spec": {"template": pod}}):
        ports = found[index].get("ports") or []
        for port in ports:
            if port.get("name") == "http":
                return int(port["containerPort"])
        if ports:
            return int(ports[0]["containerPort"])
    return None


def pod_view(pod: Mapping[str, Any]) -> PodView:
    """What a pod says about itself: its version, readiness, scheduling and container state."""
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    found = list(spec.get("containers") or [])
    indexes = serving_containers({"spec": {"template": pod}})
    container = found[indexes[0]] if indexes else {}
    version = None
    for var in container.get("env") or []:
        if var.get("name") == ENV_MODEL_VERSION:
            version = var.get("value")
    labels = (pod.get("metadata") or {}).get("labels") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    ready = (conditions.get("Ready") or {}).get("status") == "True"
    scheduled = conditions.get("PodScheduled") or {}
    unschedulable = None
    if scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
        unschedulable = scheduled.get("message") or "Unschedulable"
    state: dict[str, Any] = {}
    for cs in status.get("containerStatuses") or []:
        if cs.get("name") == container.get("name"):
            state = cs
    waiting = (state.get("state") or {}).get("waiting") or {}
    terminated = (state.get("lastState") or {}).get("terminated") or (
        (state.get("state") or {}).get("terminated") or {}
    )
    return PodView(
        name=(pod.get("metadata") or {}).get("name", ""),
        version=version,
        ready=ready,
        unschedulable=unschedulable,
        waiting=waiting.get("reason"),
        waiting_message=waiting.get("message"),
        terminated=terminated.get("reason"),
        restarts=int(state.get("restartCount") or 0),
        canary=LABEL_CANARY_OF in labels,
    )
