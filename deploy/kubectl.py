"""kubectl on one kubeconfig and context, and nothing else (no deploy ``Ctx``): the deploy's
steps (``ctx.kube``), the cluster tests and ``make bench-cluster`` share it. It runs through a
:class:`~deploy.shell.Commands`: the real one, or the unit tests' fake."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.shell import Commands, Process, Result
from mlkube.core.processes import free_port

# What kubectl port-forward prints once it listens: "Forwarding from 127.0.0.1:43123 -> 5000".
LISTENING = "Forwarding from 127.0.0.1:"


@dataclass(frozen=True)
class Forward:
    """A running ``kubectl port-forward`` on a loopback ``port``."""

    proc: Process
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.stop()


@dataclass(frozen=True)
class Kubectl:
    cmds: Commands
    binary: str
    kubeconfig: Path | None = None  # None: kubectl's own ($KUBECONFIG, ~/.kube/config)
    context: str = ""  # empty: the kubeconfig's current context

    def argv(self, *args: str) -> list[str]:
        config = [f"--kubeconfig={self.kubeconfig}"] if self.kubeconfig else []
        context = ["--context", self.context] if self.context else []
        return [self.binary, *config, *context, *args]

    def run(self, *args: str, **kwargs: Any) -> Result:
        """``kubectl <args>``; the keywords are :meth:`Commands.run`'s (check, timeout, input)."""
        return self.cmds.run(self.argv(*args), **kwargs)

    def json(self, *args: str, **kwargs: Any) -> Any:
        """``kubectl <args> -o json``, parsed."""
        return json.loads(self.run(*args, "-o", "json", **kwargs).stdout)

    def port_forward(self, namespace: str, target: str, remote: int) -> Forward:
        """``kubectl port-forward <target>`` (svc/x, pod/y) on a free loopback port, started in
        the background: the caller waits for it to answer, and stops it."""
        port = free_port()
        args = ("-n", namespace, "--address", "127.0.0.1", target, f"{port}:{remote}")
        return Forward(self.cmds.spawn(self.argv("port-forward", *args)), port)

    @contextmanager
    def forwarding(
        self, namespace: str, target: str, remote: int, timeout: float = 60
    ) -> Iterator[Forward]:
        """:meth:`port_forward` for a ``with`` block: it listens when the block starts (else
        ConnectionError, as a refused connection would be) and is stopped when it ends."""
        forward = self.port_forward(namespace, target, remote)
        try:
            deadline = time.monotonic() + timeout
            while LISTENING not in forward.proc.output():
                if forward.proc.poll() is not None or time.monotonic() > deadline:
                    tail = forward.proc.output()[-2000:]
                    raise ConnectionError(f"kubectl port-forward {target} did not start: {tail}")
                time.sleep(0.1)
            yield forward
        finally:
            forward.stop()


def cluster_answers(kube: Kubectl, kubeconfig: Path, timeout: float = 15) -> bool:
    """Does the cluster of ``kubeconfig`` answer: the file is there and its API server says it
    is ready (``/readyz``). A kubectl that is missing or times out is a no."""
    if not kubeconfig.is_file():
        return False
    return kube.run("get", "--raw", "/readyz", check=False, timeout=timeout).ok
