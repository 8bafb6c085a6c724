"""The context every step acts through, and how it finds the tools it runs.

Each step's action talks to the world only through the :class:`Ctx`: docker and kind through
``ctx.cmds``, kubectl through ``ctx.kube`` (a :class:`~deploy.kubectl.Kubectl` on
``ctx.cmds``), Helm through ``ctx.helm``, HTTP through ``ctx.http``, time through
``ctx.clock``/``ctx.sleep``; so unit tests run every step against fakes. What a step learns for
the later ones goes into ``ctx.state`` (:mod:`deploy.state`)."""

from __future__ import annotations

import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from deploy.helm import Helm
from deploy.kubectl import Kubectl
from deploy.localenv import LocalCluster, read_local_cluster
from deploy.options import Options
from deploy.shell import Commands, Result, StepFailed
from deploy.state import State
from mlkube.core.console import Console

T = TypeVar("T")

HttpFn = Callable[[str, str, bytes | None, Mapping[str, str]], tuple[int, bytes]]

TOOL_HINTS = {
    "docker": "install Docker (Docker Desktop, or Docker Engine on Linux): "
    "https://docs.docker.com/get-docker/",
    "podman": "install Podman (Debian/Ubuntu: apt-get install podman netavark aardvark-dns; as "
    "root on a cgroup v1 host also run images/setup-podman.sh): "
    "https://podman.io/docs/installation",
    "kind": "install kind v0.31+: `go install sigs.k8s.io/kind@v0.31.0`, `brew install kind`, or a "
    "release binary (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)",
    "kubectl": "run `make tools` (puts a pinned kubectl into ./bin), or "
    "https://kubernetes.io/docs/tasks/tools/",
    "helm": "run `make tools` (puts a pinned helm into ./bin), or "
    "https://helm.sh/docs/intro/install/",
}


def urllib_http(
    method: str, url: str, body: bytes | None, headers: Mapping[str, str], timeout: float = 10.0
) -> tuple[int, bytes]:
    """One HTTP request; HTTP errors are answers (status, body), network errors raise OSError."""
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


@dataclass
class Ctx:
    opts: Options
    cmds: Commands
    helm: Helm
    tools: Mapping[str, str | None]
    console: Console = field(default_factory=Console)
    http: HttpFn = urllib_http
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    now: Callable[[], float] = time.time
    host_os: str = sys.platform
    state: State = field(default_factory=State)

    @property
    def context(self) -> str:
        if self.state.context:
            return self.state.context
        return self.opts.kind_context if self.opts.env == "kind" else ""

    def tool(self, name: str) -> str:
        path = self.tools.get(name)
        if not path:
            raise StepFailed(f"{name} is not installed: {TOOL_HINTS.get(name, '')}")
        return path

    def run(self, tool: str, *args: str, **kwargs: Any) -> Result:
        return self.cmds.run([self.tool(tool), *args], **kwargs)

    @property
    def kube(self) -> Kubectl:
        """kubectl on the deploy's kube-context (its kubeconfig is kubectl's own: on the local
        cluster, the CLI points $KUBECONFIG at it)."""
        return Kubectl(self.cmds, self.tool("kubectl"), context=self.context)

    def local_cluster(self) -> LocalCluster:
        """ENV=local: the cluster's kubeconfig, context and logs, asked of `cluster.py env
        --json` once."""
        if self.state.local is None:
            self.state.local = read_local_cluster(
                self.cmds, self.opts.local_cluster_script, self.tool("python")
            )
        return self.state.local

    def kubectl(self, *args: str, **kwargs: Any) -> Result:
        return self.kube.run(*args, **kwargs)

    def fmt(self, template: str) -> str:
        """Fill a step's ``look`` hint; plain replace, since kubectl hints hold braces."""
        return (
            template.replace("{context}", self.context or "<current>")
            .replace("{ns}", self.opts.namespace)
            .replace("{release}", self.opts.release)
            .replace("{cluster}", self.opts.cluster)
            .replace("{engine}", self.state.images.engine)
        )

    @property
    def make_env(self) -> str:
        """What to append to a `make` command so it targets the same place: the target, and the
        namespace and release when they are not the defaults."""
        words = [] if self.opts.env == "kind" else [f"ENV={self.opts.env}"]
        if self.opts.namespace != "mlkube":
            words.append(f"NAMESPACE={self.opts.namespace}")
        if self.opts.release != "mlkube":
            words.append(f"RELEASE={self.opts.release}")
        return "".join(f" {word}" for word in words)


def wait_for(
    ctx: Ctx, what: str, probe: Callable[[], T | None], *, timeout: float, interval: float = 3.0
) -> T:
    """Call ``probe`` until it returns something other than None; StepFailed after ``timeout``.
    Time is the context's (``ctx.clock``/``ctx.sleep``), so tests wait without waiting."""
    deadline = ctx.clock() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        if ctx.clock() >= deadline:
            raise StepFailed(f"timed out after {timeout:.0f}s waiting for {what}")
        ctx.sleep(interval)
