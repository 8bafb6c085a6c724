"""What a real cluster would refuse or get wrong, checked on the render: immutable fields that a
chart bump must not touch, and the Host headers MLflow's own middleware accepts."""

from __future__ import annotations

import pytest
import yaml
from mlflow.server.security_utils import is_allowed_host_header

from tests.charts.manifests import Rendered, helm_template

pytestmark = pytest.mark.charts

# Labels whose value changes with a chart or app version: never on an immutable field.
VERSIONED_LABELS = {"helm.sh/chart", "app.kubernetes.io/version"}


def test_statefulset_claim_templates_carry_no_versioned_label(rendered: Rendered) -> None:
    """volumeClaimTemplates are immutable: a label with the chart version in it makes every
    `helm upgrade` after a chart bump fail ("updates to statefulset spec ... are forbidden")."""
    for sts in rendered.of_kind("StatefulSet"):
        for claim in sts["spec"].get("volumeClaimTemplates", []):
            labels = set(claim["metadata"].get("labels", {}))
            assert not labels & VERSIONED_LABELS, (
                f"{rendered.name}: StatefulSet {sts['metadata']['name']} claim "
                f"{claim['metadata']['name']} has {sorted(labels & VERSIONED_LABELS)}"
            )


@pytest.mark.parametrize(
    "host",
    [
        "10.244.1.7:5000",  # kind / most CNIs
        "172.31.4.9:5000",  # EKS VPC CNI
        "100.64.3.4:5000",  # EKS custom networking (CGNAT range)
        "100.127.255.1:5000",
        "[2600:1f14:abc::7]:5000",  # EKS IPv6: pods get VPC (global) addresses
        "[fd00:10:244::7]:5000",
        "localhost:5000",
        "mlkube-mlflow.mlkube.svc:5000",
    ],
)
def test_mlflow_accepts_probes_and_scrapers_by_pod_ip(
    renders: dict[str, Rendered], host: str
) -> None:
    """Prometheus and the kubelet call the pod IP: MLflow answers 403 to a Host it does not list."""
    server = renders["default"].get("Deployment", "mlkube-mlflow")
    [container] = [
        c for c in server["spec"]["template"]["spec"]["containers"] if c["name"] == "mlflow"
    ]
    env = {e["name"]: e.get("value") for e in container["env"]}
    allowed = env["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    assert is_allowed_host_header(allowed, host)


def test_mlflow_still_refuses_a_foreign_host_name(renders: dict[str, Rendered]) -> None:
    server = renders["default"].get("Deployment", "mlkube-mlflow")
    [container] = [
        c for c in server["spec"]["template"]["spec"]["containers"] if c["name"] == "mlflow"
    ]
    env = {e["name"]: e.get("value") for e in container["env"]}
    allowed = env["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    assert not is_allowed_host_header(allowed, "attacker.example:5000")
    assert not is_allowed_host_header(allowed, "100.128.0.1:5000")  # outside 100.64.0.0/10


@pytest.mark.parametrize(
    ("values", "workers"),
    [
        ([], "1"),  # sqlite: one writer, whatever mlflow.workers says
        (["mlflow.workers=8"], "1"),
        (["mlflow.backend.type=postgres", "mlflow.resources.limits.cpu=3500m"], "3"),
        (["mlflow.backend.type=postgres", "mlflow.resources.limits.cpu=250m"], "1"),
        (["mlflow.backend.type=postgres", "mlflow.resources.limits.cpu=2"], "2"),
        (["mlflow.backend.type=postgres", "mlflow.workers=6"], "6"),  # set by hand: as asked
    ],
)
def test_mlflow_workers_follow_the_backend_and_the_cpu_limit(
    values: list[str], workers: str
) -> None:
    """More workers than CPUs starve, and uvicorn's supervisor kills the ones that miss its
    ping; with sqlite, a second worker risks "database is locked"."""
    args = [a for v in values for a in ("--set", v)]
    proc = helm_template(*args)
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    [server] = [d for d in docs if d["kind"] == "Deployment"
                and d["metadata"]["name"] == "mlkube-mlflow"]  # fmt: skip
    [container] = [c for c in server["spec"]["template"]["spec"]["containers"]
                   if c["name"] == "mlflow"]  # fmt: skip
    assert f"--workers={workers}" in container["args"]
