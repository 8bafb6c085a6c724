"""Talking to the local cluster from the tests: kubectl with its kubeconfig, bounded waits, and
long commands whose log is the failure message."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from mlkube.deploy.ingress import SAMPLE_REQUEST
from mlkube.deploy.podload import SCRIPT, report_in
from tests.timeouts import POLL_S

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[2]
CLUSTER_PY = REPO / "hack" / "cluster" / "cluster.py"
STATE = Path(os.environ.get("MLKUBE_CLUSTER_STATE", "/var/tmp/mlkube-cluster"))
KUBECONFIG = STATE / "kubeconfig"
CACHE = Path(os.environ.get("MLKUBE_CLUSTER_CACHE", "/var/cache/mlkube-cluster"))
KUBECTL = shutil.which("kubectl", path=f"{REPO / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
HELM = shutil.which("helm", path=f"{REPO / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")


def _tool(
    exe: str | None, args: tuple[str, ...], check: bool, timeout: float, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """kubectl or helm on the local cluster's kubeconfig; with ``check``, a failure is an
    assertion that shows the command and what it said."""
    assert exe, "kubectl or helm missing: run `make tools`"
    proc = subprocess.run(
        [exe, f"--kubeconfig={KUBECONFIG}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
        check=False,
    )
    if check and proc.returncode != 0:
        name = Path(exe).name
        raise AssertionError(f"{name} {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def kubectl(
    *args: str, check: bool = True, timeout: float = 120, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return _tool(KUBECTL, args, check, timeout, input)


def helm(*args: str, timeout: float = 600) -> str:
    return _tool(HELM, args, True, timeout).stdout


def kubectl_json(*args: str) -> Any:
    return json.loads(kubectl(*args, "-o", "json").stdout)


def answers() -> bool:
    if not KUBECONFIG.is_file() or not KUBECTL:
        return False
    try:
        return kubectl("get", "--raw=/readyz", check=False, timeout=10).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def eventually(probe: Callable[[], T | None], timeout: float, what: str) -> T:
    """The first value other than None (or False) that ``probe`` returns within ``timeout``."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = probe()
        except (AssertionError, OSError, subprocess.SubprocessError) as exc:
            value, last = None, exc
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f}s: {what} (last: {last})")
        time.sleep(max(POLL_S, 1.0))


def run_logged(
    argv: list[str],
    log: Path,
    timeout: float,
    env: dict[str, str] | None = None,
    echo: Callable[[str], None] | None = None,
) -> str:
    """Run a long command with its output in ``log``; its tail is the failure message. ``echo``
    gets each line as it comes (the cluster's start: a cold build is half an hour of progress)."""
    deadline = time.monotonic() + timeout
    with log.open("w") as out:
        proc = subprocess.Popen(
            argv,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
        )
        assert proc.stdout
        for line in proc.stdout:
            out.write(line)
            if echo:
                echo(line.rstrip("\n"))
            if time.monotonic() > deadline:
                proc.kill()
                break
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    text = log.read_text(errors="replace")
    assert code == 0, f"{' '.join(argv)} exited {code} (log {log}):\n" + "\n".join(
        text.splitlines()[-80:]
    )
    return text


class PortForward:
    """``kubectl port-forward`` to a Service on a free loopback port, for a ``with`` block."""

    def __init__(self, namespace: str, target: str, remote: int) -> None:
        self.namespace, self.target, self.remote = namespace, target, remote
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0

    def __enter__(self) -> PortForward:
        assert KUBECTL
        self.proc = subprocess.Popen(
            [KUBECTL, f"--kubeconfig={KUBECONFIG}", "port-forward", "-n", self.namespace,
             "--address", "127.0.0.1", self.target, f":{self.remote}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        assert self.proc.stdout
        deadline = time.monotonic() + 60
        for line in self.proc.stdout:  # "Forwarding from 127.0.0.1:43123 -> 5000"
            if "Forwarding from 127.0.0.1:" in line:
                self.port = int(line.split("127.0.0.1:")[1].split()[0])
                return self
            if time.monotonic() > deadline:
                break
        self.__exit__()
        raise AssertionError(f"kubectl port-forward {self.target} did not start: {line!r}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def http(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """One request, no proxy (the addresses are local); HTTP errors are answers."""
    data = json.dumps(body).encode() if body is not None else None
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    request = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=30) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


class LoadPod:
    """A bounded load from a pod inside the cluster to ``url`` for a ``with`` block (the same
    pod script as `make e2e`'s, mlkube.deploy.podload): its report when the block ends."""

    def __init__(self, namespace: str, image: str, url: str, max_seconds: float) -> None:
        self.namespace, self.image, self.url, self.max_seconds = namespace, image, url, max_seconds
        self.name = f"load-{uuid.uuid4().hex[:6]}"
        self.report: dict[str, Any] = {}

    def __enter__(self) -> LoadPod:
        kubectl(
            "run", self.name, "-n", self.namespace, "--restart=Never", f"--image={self.image}",
            "--image-pull-policy=Never", "--labels=app.kubernetes.io/name=test-load",
            "--command", "--", "python", "-c", SCRIPT,
            self.url, str(int(self.max_seconds)), json.dumps(SAMPLE_REQUEST),
        )  # fmt: skip
        kubectl(
            "wait", "-n", self.namespace, f"pod/{self.name}", "--for=condition=Ready",
            "--timeout=180s", timeout=200,
        )  # fmt: skip
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            kubectl(
                "exec", "-n", self.namespace, self.name, "--", "touch", "/tmp/stop", check=False
            )

            def reported() -> dict[str, Any] | None:
                logs = kubectl("logs", "-n", self.namespace, self.name, check=False).stdout
                return report_in(logs)

            self.report = eventually(reported, 60, f"the report of pod/{self.name}")
        finally:
            kubectl("delete", "pod", self.name, "-n", self.namespace, "--wait=false", check=False)
