"""The local cluster itself (hack/cluster), before mlkube is on it: the control plane (RBAC,
ServiceAccount tokens, the Deployment controller's rollouts), a real kubelet running an mlkube
image imported from the engine, Service DNS from inside a pod, and the Ingress controller.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.conftest import Deployed
from tests.cluster.kube import eventually, http, kubectl
from tests.timeouts import EVENTUAL_S

_kubectl = kubectl


@pytest.fixture
def namespace(cluster: Path) -> Iterator[str]:
    ns = f"t-{uuid.uuid4().hex[:8]}"
    _kubectl("create", "namespace", ns)
    yield ns
    _kubectl("delete", "namespace", ns, "--wait=false", check=False)


@pytest.fixture
def serve_image(deployed: Deployed) -> str:
    return deployed.serve_image


def _node() -> dict[str, Any]:
    return json.loads(_kubectl("get", "nodes", "-o", "json").stdout)["items"][0]


def test_node_is_ready(cluster: Path) -> None:
    conds = {c["type"]: c["status"] for c in _node()["status"]["conditions"]}
    assert conds.get("Ready") == "True", conds


def test_rbac_denies_a_service_account_by_default(namespace: str) -> None:
    p = _kubectl(
        "auth",
        "can-i",
        "list",
        "pods",
        f"--as=system:serviceaccount:{namespace}:default",
        "-n",
        namespace,
        check=False,
    )
    assert p.stdout.strip() == "no"
    _kubectl(
        "create",
        "rolebinding",
        "view",
        "--clusterrole=view",
        f"--serviceaccount={namespace}:default",
        "-n",
        namespace,
    )
    p = _kubectl(
        "auth",
        "can-i",
        "list",
        "pods",
        f"--as=system:serviceaccount:{namespace}:default",
        "-n",
        namespace,
        check=False,
    )
    assert p.stdout.strip() == "yes"


def test_service_account_token_is_issued(namespace: str) -> None:
    token = _kubectl("create", "token", "default", "-n", namespace).stdout.strip()
    assert token.count(".") == 2


def _deployment(name: str, image: str, replicas: int = 1) -> str:
    return f"""apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      automountServiceAccountToken: true
      containers:
      - name: serve
        image: {image}
        imagePullPolicy: Never
        env:
        - {{name: MLFLOW_TRACKING_URI, value: "http://127.0.0.1:9"}}
        - {{name: MODEL_NAME, value: none}}
        ports: [{{name: http, containerPort: 8080}}]
        readinessProbe:
          httpGet: {{path: /healthz/live, port: http}}
          periodSeconds: 2
        resources:
          requests: {{cpu: 10m, memory: 64Mi}}
---
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  selector: {{app: {name}}}
  ports: [{{name: http, port: 80, targetPort: http}}]
"""


def test_deployment_rollout(namespace: str, serve_image: str) -> None:
    _kubectl("apply", "-n", namespace, "-f", "-", input=_deployment("web", serve_image))
    _kubectl("rollout", "status", "deployment/web", "-n", namespace, "--timeout=180s", timeout=200)
    rs = json.loads(_kubectl("get", "rs", "-n", namespace, "-o", "json").stdout)["items"]
    assert len(rs) == 1
    # a change to the template makes a second ReplicaSet and rolls over to it
    _kubectl("set", "env", "deployment/web", "-n", namespace, "LOG_LEVEL=DEBUG")
    _kubectl("rollout", "status", "deployment/web", "-n", namespace, "--timeout=180s", timeout=200)
    rs = json.loads(_kubectl("get", "rs", "-n", namespace, "-o", "json").stdout)["items"]
    assert sorted(r["status"].get("replicas", 0) for r in rs) == [0, 1]


def _exec_python(namespace: str, pod: str, code: str) -> str:
    return _kubectl("exec", "-n", namespace, pod, "--", "python", "-c", code, timeout=60).stdout


def test_pod_resolves_and_reaches_a_service(namespace: str, serve_image: str) -> None:
    _kubectl("apply", "-n", namespace, "-f", "-", input=_deployment("web", serve_image))
    _kubectl("rollout", "status", "deployment/web", "-n", namespace, "--timeout=180s", timeout=200)
    pod = _kubectl(
        "get", "pods", "-n", namespace, "-l", "app=web", "-o", "jsonpath={.items[0].metadata.name}"
    ).stdout
    svc_ip = _kubectl(
        "get", "svc", "web", "-n", namespace, "-o", "jsonpath={.spec.clusterIP}"
    ).stdout
    resolve = "import socket; print(socket.gethostbyname('web'))"
    eventually(
        lambda: _exec_python(namespace, pod, resolve).strip() == svc_ip,
        EVENTUAL_S,
        f"'web' resolves to the Service's address {svc_ip} in the pod",
    )
    # kube-proxy programs the Service's endpoints a moment after the pod turns ready.
    live = (
        "import urllib.request as u; print(u.urlopen('http://web/healthz/live', timeout=5).status)"
    )
    eventually(
        lambda: _exec_python(namespace, pod, live).strip() == "200",
        EVENTUAL_S,
        "http://web/healthz/live answers 200 from the pod, through the Service",
    )
    # the ServiceAccount token mounted in the pod authenticates to the API server
    code = (
        "import ssl, urllib.request as u; d='/var/run/secrets/kubernetes.io/serviceaccount/';"
        "r=u.Request('https://kubernetes.default.svc/version',"
        " headers={'Authorization': 'Bearer '+open(d+'token').read()});"
        "print(u.urlopen(r, context=ssl.create_default_context(cafile=d+'ca.crt'),"
        " timeout=5).status)"
    )
    eventually(
        lambda: _exec_python(namespace, pod, code).strip() == "200",
        EVENTUAL_S,
        "the pod's ServiceAccount token authenticates to the API server",
    )


def test_ingress_routes_to_the_service(namespace: str, serve_image: str) -> None:
    _kubectl("apply", "-n", namespace, "-f", "-", input=_deployment("web", serve_image))
    host = f"{namespace}.mlkube.test"
    _kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input=f"""apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: web}}
spec:
  rules:
  - host: {host}
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{name: http}}}}}}}}
""",
    )
    _kubectl("rollout", "status", "deployment/web", "-n", namespace, "--timeout=180s", timeout=200)
    node_ip = next(
        a["address"] for a in _node()["status"]["addresses"] if a["type"] == "InternalIP"
    )
    eventually(
        lambda: http("GET", f"http://{node_ip}/healthz/live", headers={"Host": host})[0] == 200,
        EVENTUAL_S,
        f"http://{node_ip}/healthz/live with Host {host} answers 200 through Traefik",
    )
    ing = json.loads(_kubectl("get", "ingress", "web", "-n", namespace, "-o", "json").stdout)
    assert ing["spec"].get("ingressClassName") == "traefik"  # the default IngressClass
