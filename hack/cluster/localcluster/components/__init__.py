"""The components of the local cluster, in the one order that matters: `up` starts them in it
(those its node mode runs), `down` stops them in reverse, `status` reports them in it."""

from __future__ import annotations

from localcluster.components import (
    apiserver,
    containerd,
    controller_manager,
    coredns,
    etcd,
    kube_proxy,
    kubelet,
    kwok,
    local_path,
    scheduler,
    traefik,
)
from localcluster.components.base import Component, Readiness
from localcluster.config import NodeMode

COMPONENTS: tuple[Component, ...] = (
    etcd.COMPONENT,
    apiserver.COMPONENT,
    controller_manager.COMPONENT,
    scheduler.COMPONENT,
    # the real node
    containerd.COMPONENT,
    kubelet.COMPONENT,
    kube_proxy.COMPONENT,
    coredns.COMPONENT,
    local_path.COMPONENT,
    traefik.COMPONENT,
    # the fake one
    kwok.COMPONENT,
)


def up_order(mode: NodeMode) -> list[Component]:
    """What `up` starts for a node mode, in order."""
    return [c for c in COMPONENTS if c.runs_in(mode)]


def down_order() -> list[Component]:
    """What `down` stops: every component, whatever mode started it, last started first."""
    return list(reversed(COMPONENTS))


def status_order() -> list[Component]:
    return list(COMPONENTS)


def by_name(name: str) -> Component:
    for c in COMPONENTS:
        if c.name == name:
            return c
    raise KeyError(name)


__all__ = [
    "COMPONENTS",
    "Component",
    "Readiness",
    "by_name",
    "down_order",
    "status_order",
    "up_order",
]
