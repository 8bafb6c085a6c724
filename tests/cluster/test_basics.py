"""Checks against the local cluster of hack/cluster (`make cluster-up`).

Skipped unless that cluster is up (its kubeconfig exists and the API answers), so
`make test` stays fast where no cluster runs. With one:

    make cluster-up && .venv/bin/python -m pytest tests/cluster -q && make cluster-down

What they show: the control plane (RBAC, ServiceAccount tokens, the Deployment
controller's rollouts), a real kubelet running the mlkube-serve image imported
from podman, and Service DNS from inside a pod.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

STATE = Path(os.environ.get("MLKUBE_CLUSTER_STATE", "/var/tmp/mlkube-cluster"))
KUBECONFIG = STATE / "kubeconfig"
REPO = Path(__file__).resolve().parents[2]
KUBECTL = shutil.which("kubectl", path=f"{REPO / 'bin'}:{os.environ.get('PATH', '')}")


def _kubectl(
    *args: str, check: bool = True, timeout: float = 120, input: str | None = None
) -> subprocess.CompletedProcess:
    assert KUBECTL
    p = subprocess.run(
        [KUBECTL, f"--kubeconfig={KUBECONFIG}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
    )
    if check and p.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {p.stderr}")
    return p


def _cluster_up() -> bool:
    if not KUBECONFIG.exists() or not KUBECTL:
        return False
    try:
        return _kubectl("get", "--raw=/readyz", check=False, timeout=10).returncode == 0
    except subprocess.TimeoutExpired:
        return False


pytestmark = pytest.mark.skipif(not _cluster_up(), reason="no local cluster (make cluster-up)")


def _node() -> dict:
    return json.loads(_kubectl("get", "nodes", "-o", "json").stdout)["items"][0]


def _real_node() -> bool:
    return _node()["metadata"].get("labels", {}).get("type") != "kwok"


@pytest.fixture
def namespace():
    ns = f"t-{uuid.uuid4().hex[:8]}"
    _kubectl("create", "namespace", ns)
    yield ns
    _kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_node_is_ready():
    conds = {c["type"]: c["status"] for c in _node()["status"]["conditions"]}
    assert conds.get("Ready") == "True", conds


def test_rbac_denies_a_service_account_by_default(namespace):
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


def test_service_account_token_is_issued(namespace):
    token = _kubectl("create", "token", "default", "-n", namespace).stdout.strip()
    assert token.count(".") == 2


SERVE = os.environ.get("MLKUBE_CLUSTER_SERVE_IMAGE", "localhost/mlkube-serve:0.1.0")


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


def test_deployment_rollout(namespace):
    _kubectl("apply", "-n", namespace, "-f", "-", input=_deployment("web", SERVE))
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


def test_pod_resolves_and_reaches_a_service(namespace):
    if not _real_node():
        pytest.skip("fake (kwok) node: no containers run")
    _kubectl("apply", "-n", namespace, "-f", "-", input=_deployment("web", SERVE))
    _kubectl("rollout", "status", "deployment/web", "-n", namespace, "--timeout=180s", timeout=200)
    pod = _kubectl(
        "get", "pods", "-n", namespace, "-l", "app=web", "-o", "jsonpath={.items[0].metadata.name}"
    ).stdout
    svc_ip = _kubectl(
        "get", "svc", "web", "-n", namespace, "-o", "jsonpath={.spec.clusterIP}"
    ).stdout
    deadline = time.monotonic() + 30
    while True:
        out = _exec_python(
            namespace, pod, "import socket; print(socket.gethostbyname('web'))"
        ).strip()
        if out == svc_ip or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert out == svc_ip
    body = _exec_python(
        namespace,
        pod,
        "import urllib.request as u; print(u.urlopen('http://web/healthz/live', timeout=5).status)",
    )
    assert body.strip() == "200"
    # the ServiceAccount token mounted in the pod authenticates to the API server
    code = (
        "import ssl, urllib.request as u; d='/var/run/secrets/kubernetes.io/serviceaccount/';"
        "r=u.Request('https://kubernetes.default.svc/version',"
        " headers={'Authorization': 'Bearer '+open(d+'token').read()});"
        "print(u.urlopen(r, context=ssl.create_default_context(cafile=d+'ca.crt'),"
        " timeout=5).status)"
    )
    assert _exec_python(namespace, pod, code).strip() == "200"


def test_ingress_routes_to_the_service(namespace):
    if not _real_node():
        pytest.skip("fake (kwok) node: no containers run")
    if _kubectl("get", "ingressclass", "traefik", check=False).returncode != 0:
        pytest.skip("no Ingress controller (Traefik not built)")
    import urllib.request

    _kubectl("apply", "-n", namespace, "-f", "-", input=_deployment("web", SERVE))
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
    deadline, status = time.monotonic() + 30, None
    while time.monotonic() < deadline:
        req = urllib.request.Request(f"http://{node_ip}/healthz/live", headers={"Host": host})
        try:
            opener = urllib.request.build_opener(
                urllib.request.ProxyHandler({})
            )  # a local address: no proxy
            with opener.open(req, timeout=5) as r:
                status = r.status
                break
        except OSError:
            time.sleep(1)
    assert status == 200
    ing = json.loads(_kubectl("get", "ingress", "web", "-n", namespace, "-o", "json").stdout)
    assert ing["spec"].get("ingressClassName") == "traefik"  # the default IngressClass
