"""The cluster layer: a real Kubernetes (hack/cluster: etcd, kube-apiserver, the controllers, a
kubelet with containerd and runc, CoreDNS, kube-proxy, Traefik, local-path-provisioner) on this
machine, and mlkube installed on it by `mlkube deploy --env local`, the code
`make deploy ENV=local` runs.

The package's first test starts the cluster when it is not running (building its binaries
first when the cache is empty, which takes tens of minutes once) and stops it after the last
one; a cluster that was already up (`make cluster-up`) is used and left running. Skipped with a
one-line reason where the machine cannot host it (not Linux, not root, no Go and no built
cache, no container engine), unless ``MLKUBE_REQUIRE_CLUSTER=1`` (set by ``.ci/run``), which
turns that skip into a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.kube import (
    CLUSTER,
    CLUSTER_PY,
    HELM,
    KUBECONFIG,
    KUBECTL,
    answers,
    kubectl,
    kubectl_json,
    run_logged,
)
from tests.settings import suite_settings
from tests.timeouts import CLUSTER_DEPLOY_S, CLUSTER_UP_S

# Where the tests install mlkube: apart from a `make deploy ENV=local` of the user's.
NAMESPACE = "mlkube-e2e"
RELEASE = "e2e"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            # The first test pays for starting the cluster and deploying (pytest-timeout counts
            # fixture setup); each test's own waits are bounded well below this.
            item.add_marker(pytest.mark.timeout(CLUSTER_UP_S + CLUSTER_DEPLOY_S))
            item.add_marker(pytest.mark.cluster)


def host_problem() -> str | None:
    """Why this machine cannot run the local cluster, or None."""
    if sys.platform != "linux":
        return "the local cluster runs on Linux (on a laptop: make deploy && make e2e, on kind)"
    if os.geteuid() != 0:
        return "the local cluster needs root (containerd, the kubelet, iptables)"
    built = (CLUSTER.cache / "bin" / "kube-apiserver").is_file()
    if not built and not (shutil.which("go") or Path("/usr/local/go/bin/go").is_file()):
        return f"no Go toolchain to build the cluster's binaries, and none built in {CLUSTER.cache}"
    for tool in ("runc", "iptables", "ip"):
        if not shutil.which(tool):
            return f"{tool} is not installed (Debian: apt-get install runc iptables iproute2)"
    if not shutil.which("podman"):
        # The harness packs its node images (pause, volume helper, policy engine) with podman.
        return "podman is not installed (Debian: apt-get install podman; images/setup-podman.sh)"
    if not KUBECTL or not HELM:
        return "kubectl or helm missing: run `make tools`"
    return None


# Package scope: the cluster stops (and its pods stop using CPU and memory) as soon as the last
# cluster test is done, not at the end of the whole `make test` session.
@pytest.fixture(scope="package")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Path]:
    """The kubeconfig of a running local cluster."""
    problem = host_problem()
    if problem:
        if suite_settings().require_cluster:
            pytest.fail(f"{problem} (MLKUBE_REQUIRE_CLUSTER=1: the cluster tests must run)")
        pytest.skip(problem)
    if answers():
        yield KUBECONFIG  # someone's `make cluster-up`: used as it is, left running
        return
    log = tmp_path_factory.mktemp("cluster") / "up.log"
    try:
        # Its progress goes to the terminal as it comes: a cold start builds for half an hour.
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        capture = request.config.pluginmanager.get_plugin("capturemanager")

        def echo(line: str) -> None:
            if reporter is None or capture is None:
                return
            with capture.global_and_fixture_disabled():  # past pytest's output capture
                reporter.write_line(f"    {line}")

        run_logged(
            [sys.executable, str(CLUSTER_PY), "up", "--no-images"], log, CLUSTER_UP_S, echo=echo
        )
        yield KUBECONFIG
    finally:
        down = subprocess.run(
            [sys.executable, str(CLUSTER_PY), "down"],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert down.returncode == 0, f"cluster down failed:\n{down.stdout}\n{down.stderr}"


@dataclass(frozen=True)
class Deployed:
    namespace: str
    release: str
    log: str  # what `mlkube deploy` printed
    serve_image: str  # the serving image the deploy imported into the node

    def deployment(self, component: str) -> dict[str, Any]:
        selector = (
            f"app.kubernetes.io/instance={self.release},app.kubernetes.io/component={component}"
        )
        if component == "serving":
            # The one the operator manages, never its canary (same labels, but this one).
            selector += ",mlkube.io/model-name"
        items = kubectl_json("get", "deployment", "-n", self.namespace, "-l", selector)["items"]
        assert len(items) == 1, f"{len(items)} {component} Deployments"
        return items[0]  # type: ignore[no-any-return]

    def image(self, component: str) -> str:
        return str(self.deployment(component)["spec"]["template"]["spec"]["containers"][0]["image"])


# What the tests set against the local values: the chart's own rollout deadline, so the rollback
# test shows that a version that cannot load is judged by its load error, long before it.
TEST_VALUES = {"serving": {"progressDeadlineSeconds": 300}}


@pytest.fixture(scope="package")
def deployed(cluster: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    """mlkube on the local cluster, installed by `mlkube deploy --env local`
    (images built and imported, the chart installed, MLflow and every Deployment waited for,
    the first training run by the chart's hook)."""
    work = tmp_path_factory.mktemp("deploy")
    values = work / "test-values.yaml"
    values.write_text(json.dumps(TEST_VALUES))
    engine = "podman"
    log = run_logged(
        [
            sys.executable,
            "-m",
            "mlkube",
            "deploy",
            "--env",
            "local",
            "--namespace",
            NAMESPACE,
            "--release",
            RELEASE,
            "--engine",
            engine,
            "--values",
            str(values),
            "--timeout",
            "900",
        ],  # fmt: skip
        work / "deploy.log",
        CLUSTER_DEPLOY_S,
    )
    serving = kubectl_json(
        "get", "deployment", "-n", NAMESPACE, "-l",
        f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=serving",
    )["items"][0]  # fmt: skip
    image = serving["spec"]["template"]["spec"]["containers"][0]["image"]
    yield Deployed(NAMESPACE, RELEASE, log, image)
    if not suite_settings().keep_deploy:
        assert HELM
        subprocess.run(
            [HELM, f"--kubeconfig={KUBECONFIG}", "uninstall", RELEASE, "-n", NAMESPACE, "--wait"],
            capture_output=True,
            timeout=300,
            check=False,
        )
        kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)
