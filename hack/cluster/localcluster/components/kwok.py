"""kwok (NODE=kwok): a fake node, so the control plane schedules without running containers."""

from __future__ import annotations

from localcluster import pki, templates
from localcluster.components.base import Argv, Component, Readiness, kubeconfig_of
from localcluster.config import Config
from localcluster.host import Host

USER = "kwok"


def command(cfg: Config) -> Argv:
    return [
        cfg.bin / "kwok",
        f"--kubeconfig={kubeconfig_of(cfg, USER)}",
        "--manage-all-nodes=false",
        "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
        "--manage-nodes-with-label-selector=",
        "--disregard-status-with-annotation-selector=kwok.x-k8s.io/status=custom",
        "--node-ip=" + cfg.node_ip,
        "--node-port=0",
        "--server-address=127.0.0.1:10247",
    ]


def prepare(host: Host) -> None:
    pki.component_kubeconfig(host.cfg, USER)


def add_node(host: Host) -> None:
    """The Node it fakes, annotated for it."""
    host.apply(templates.manifest("kwok-node.yaml", node_name=host.cfg.node_name))


def ready(host: Host) -> list[Readiness]:
    return [Readiness(host.node_ready, 60, f"fake node {host.cfg.node_name} Ready")]


COMPONENT = Component("kwok", command, ready, nodes=("kwok",), prepare=prepare, started=add_node)
