"""What a component of the local cluster is: its name, the node modes it runs in, its command
line (from the config alone), what it needs written or applied before it starts, and the checks
that say it is ready. One runtime (:mod:`localcluster.cluster`) starts, stops and reports them
all from the one ordered list in :mod:`localcluster.components`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from localcluster.config import Config, NodeMode
from localcluster.host import Check, Host

Argv = list[str | Path]


@dataclass(frozen=True)
class Readiness:
    check: Check
    timeout: float
    what: str  # what the check proves, for the progress line and the error


def nothing(host: Host) -> None:
    """A hook with nothing to do."""


def always(cfg: Config) -> str | None:
    return None


@dataclass(frozen=True)
class Component:
    name: str  # its log (logs/<name>.log) and pidfile (run/<name>.pid)
    command: Callable[[Config], Argv]
    ready: Callable[[Host], Sequence[Readiness]]
    nodes: tuple[NodeMode, ...] = ("real", "kwok", "none")  # the node modes it runs in
    # Before the start: config files, kubeconfigs, manifests it needs in the cluster.
    prepare: Callable[[Host], None] = nothing
    # After the start, before the readiness checks (kwok: the fake Node it is to run).
    started: Callable[[Host], None] = nothing
    # Once it is ready (containerd: the node's own images imported).
    after_ready: Callable[[Host], None] = nothing
    # Why it is skipped although its node mode runs it (traefik not built), or None.
    skip: Callable[[Config], str | None] = always
    # Before `down` stops it (containerd: the pods go through the CRI first).
    before_stop: Callable[[Host], None] = nothing

    def runs_in(self, mode: NodeMode) -> bool:
        return mode in self.nodes


def kubeconfig_of(cfg: Config, user: str) -> Path:
    """Where a component's kubeconfig is written (``pki.component_kubeconfig``)."""
    return cfg.state / f"{user}.kubeconfig"
