"""CoreDNS as a host process on NODE_IP:53, behind the `kube-dns` Service (its EndpointSlice is
the harness's). The Corefile has no `forward`: names outside the cluster get no answer, nothing
leaves the host."""

from __future__ import annotations

from localcluster import pki, templates
from localcluster.components.base import Argv, Component, Readiness, kubeconfig_of
from localcluster.config import CLUSTER_DOMAIN, Config
from localcluster.host import Host
from localcluster.probes import dns_query

USER = "coredns"


def corefile_path(cfg: Config) -> str:
    return str(cfg.state / "Corefile")


def corefile(cfg: Config) -> str:
    return templates.config(
        "Corefile",
        node_ip=cfg.node_ip,
        cluster_domain=CLUSTER_DOMAIN,
        kubeconfig=kubeconfig_of(cfg, USER),
        context=cfg.context,
    )


def command(cfg: Config) -> Argv:
    return [cfg.bin / "coredns", "-conf", corefile_path(cfg)]


def prepare(host: Host) -> None:
    cfg = host.cfg
    pki.component_kubeconfig(cfg, USER)
    host.apply(templates.manifest("coredns-rbac.yaml"))
    host.apply(
        templates.manifest("kube-dns.yaml", dns_service_ip=cfg.dns_service_ip, node_ip=cfg.node_ip)
    )
    (cfg.state / "Corefile").write_text(corefile(cfg))


def ready(host: Host) -> list[Readiness]:
    cfg = host.cfg
    want = f"kubernetes.default.svc.{CLUSTER_DOMAIN}"
    return [
        Readiness(
            lambda: cfg.api_service_ip in dns_query(want, cfg.node_ip), 60, f"resolves {want}"
        ),
        Readiness(
            lambda: cfg.api_service_ip in dns_query(want, cfg.dns_service_ip),
            60,
            f"answers on the kube-dns Service {cfg.dns_service_ip}",
        ),
    ]


COMPONENT = Component("coredns", command, ready, nodes=("real",), prepare=prepare)
