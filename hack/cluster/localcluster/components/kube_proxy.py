"""kube-proxy in iptables mode; NodePorts on NODE_IP only, the host's conntrack left alone."""

from __future__ import annotations

from localcluster import pki, templates
from localcluster.components.base import Argv, Component, Readiness, kubeconfig_of
from localcluster.config import Config
from localcluster.host import Host
from localcluster.probes import ok_200

USER = "kube-proxy"


def config_file(cfg: Config) -> str:
    return str(cfg.state / "kube-proxy.yaml")


def config_yaml(cfg: Config) -> str:
    return templates.config(
        "kube-proxy.yaml",
        kubeconfig=kubeconfig_of(cfg, USER),
        node_name=cfg.node_name,
        pod_cidr=cfg.pod_cidr,
        node_ip=cfg.node_ip,
    )


def command(cfg: Config) -> Argv:
    return [cfg.bin / "kube-proxy", f"--config={config_file(cfg)}", "--v=1"]


def prepare(host: Host) -> None:
    pki.component_kubeconfig(host.cfg, USER)
    (host.cfg.state / "kube-proxy.yaml").write_text(config_yaml(host.cfg))


def ready(host: Host) -> list[Readiness]:
    return [Readiness(ok_200("http://127.0.0.1:10256/healthz"), 60, "healthy")]


COMPONENT = Component("kube-proxy", command, ready, nodes=("real",), prepare=prepare)
