"""The kubelet: cgroupfs driver, cgroup v1 allowed (``failCgroupV1: false``), serving on
NODE_IP:10250; ready when its healthz answers and its node is Ready."""

from __future__ import annotations

from localcluster import pki, templates
from localcluster.components.base import Argv, Component, Readiness, kubeconfig_of
from localcluster.config import CLUSTER_DOMAIN, Config
from localcluster.host import Host
from localcluster.probes import ok_200

USER = "kubelet"


def config_file(cfg: Config) -> str:
    return str(cfg.state / "kubelet" / "config.yaml")


def config_yaml(cfg: Config) -> str:
    return templates.config(
        "kubelet.yaml",
        node_ip=cfg.node_ip,
        pki=cfg.pki,
        containerd_sock=cfg.containerd_sock,
        cluster_domain=CLUSTER_DOMAIN,
        dns_service_ip=cfg.dns_service_ip,
        pod_cidr=cfg.pod_cidr,
    )


def command(cfg: Config) -> Argv:
    return [
        cfg.bin / "kubelet",
        f"--config={config_file(cfg)}",
        f"--kubeconfig={kubeconfig_of(cfg, USER)}",
        f"--root-dir={cfg.state / 'kubelet' / 'root'}",
        f"--hostname-override={cfg.node_name}",
        f"--node-ip={cfg.node_ip}",
        "--v=1",
    ]


def prepare(host: Host) -> None:
    pki.component_kubeconfig(host.cfg, USER)
    (host.cfg.state / "kubelet").mkdir(parents=True, exist_ok=True)
    (host.cfg.state / "kubelet" / "config.yaml").write_text(config_yaml(host.cfg))


def ready(host: Host) -> list[Readiness]:
    return [
        Readiness(ok_200("http://127.0.0.1:10248/healthz"), 90, "healthy"),
        Readiness(host.node_ready, 120, f"node {host.cfg.node_name} Ready"),
    ]


COMPONENT = Component("kubelet", command, ready, nodes=("real",), prepare=prepare)
