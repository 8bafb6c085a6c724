"""Talking to the local cluster from the tests: kubectl with its kubeconfig (the deploy's own
:class:`~deploy.kubectl.Kubectl`, its port-forward and load pod), bounded waits, and long
commands whose log is the failure message."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, TypeVar

from deploy.e2e.podload import LoadPod as _LoadPod
from deploy.kubectl import Forward, Kubectl, cluster_answers
from deploy.localenv import cluster_script, read_local_cluster
from deploy.shell import Result, SubprocessCommands
from tests.timeouts import POLL_S

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[2]
CLUSTER_PY = cluster_script(REPO)
# Where the cluster keeps its kubeconfig, logs and build cache: `cluster.py env --json`, as the
# deploy driver asks it (MLKUBE_CLUSTER_STATE and MLKUBE_CLUSTER_CACHE are read there only).
CLUSTER = read_local_cluster(SubprocessCommands(), CLUSTER_PY)
KUBECONFIG = CLUSTER.kubeconfig
KUBECTL = shutil.which("kubectl", path=f"{REPO / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
HELM = shutil.which("helm", path=f"{REPO / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
# The port-forwards' output goes to log files here (`make clean` removes them).
CMDS = SubprocessCommands(log_dir=REPO / ".mlkube" / "logs" / "cluster-tests")
KUBE = Kubectl(CMDS, KUBECTL or "kubectl", kubeconfig=KUBECONFIG)


def _checked(result: Result, check: bool) -> Result:
    """With ``check``, a failure is an assertion that shows the command and what it said."""
    if check and not result.ok:
        args = " ".join(result.argv[2:])  # past the tool and its --kubeconfig
        name = Path(result.argv[0]).name
        raise AssertionError(f"{name} {args}:\n{result.stdout}\n{result.stderr}")
    return result


def kubectl(
    *args: str, check: bool = True, timeout: float = 120, input: str | None = None
) -> Result:
    """kubectl on the local cluster's kubeconfig (a time-out is exit 124)."""
    assert KUBECTL, "kubectl missing: run `make tools`"
    return _checked(KUBE.run(*args, check=False, timeout=timeout, input=input), check)


def helm(*args: str, timeout: float = 600) -> str:
    assert HELM, "helm missing: run `make tools`"
    argv = [HELM, f"--kubeconfig={KUBECONFIG}", *args]
    return _checked(CMDS.run(argv, check=False, timeout=timeout), True).stdout


def kubectl_json(*args: str) -> Any:
    return json.loads(kubectl(*args, "-o", "json").stdout)


def answers() -> bool:
    return bool(KUBECTL) and cluster_answers(KUBE, KUBECONFIG)


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
        # The deadline holds for a command that stops printing too: the timer kills it, which
        # ends the read loop.
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            for line in proc.stdout:
                out.write(line)
                if echo:
                    echo(line.rstrip("\n"))
            code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        finally:
            killer.cancel()
    text = log.read_text(errors="replace")
    assert code == 0, f"{' '.join(argv)} exited {code} (log {log}):\n" + "\n".join(
        text.splitlines()[-80:]
    )
    return text


def PortForward(namespace: str, target: str, remote: int) -> AbstractContextManager[Forward]:
    """``kubectl port-forward`` to ``target`` on a free loopback port, listening, for a ``with``
    block (``.url``); one that does not start raises ConnectionError, which ``eventually``
    retries as it does a refused connection."""
    return KUBE.forwarding(namespace, target, remote)


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
    """A bounded load from a pod inside the cluster to ``url`` for a ``with`` block (`make
    e2e`'s load pod, deploy.e2e.podload, under a name of its own): its report when the block
    ends."""

    def __init__(self, namespace: str, image: str, url: str, max_seconds: float) -> None:
        self.pod = _LoadPod(KUBE, namespace, f"load-{uuid.uuid4().hex[:6]}")
        self.image, self.url, self.max_seconds = image, url, max_seconds
        self.report: dict[str, Any] = {}

    def __enter__(self) -> LoadPod:
        self.pod.create(self.image, self.url, self.max_seconds, pull="Never", label="test-load")
        try:
            self.pod.wait_ready()
        except BaseException:
            self.pod.delete()  # __exit__ does not run when __enter__ fails
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.pod.stop()
            self.report = eventually(self.pod.report, 60, f"the report of pod/{self.pod.name}")
        finally:
            self.pod.delete()
