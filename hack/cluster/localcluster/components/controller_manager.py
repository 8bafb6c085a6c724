"""kube-controller-manager: secure port 10257 on the loopback, one instance (no leader
election), signing with the cluster CA."""

from __future__ import annotations

from localcluster import pki
from localcluster.components.base import Argv, Component, Readiness, kubeconfig_of
from localcluster.config import Config
from localcluster.host import Host
from localcluster.probes import ok_200, ssl_ctx

USER = "controller-manager"


def command(cfg: Config) -> Argv:
    kc = kubeconfig_of(cfg, USER)
    return [
        cfg.bin / "kube-controller-manager",
        f"--kubeconfig={kc}",
        f"--authentication-kubeconfig={kc}",
        f"--authorization-kubeconfig={kc}",
        "--bind-address=127.0.0.1",
        "--secure-port=10257",
        "--leader-elect=false",
        f"--service-account-private-key-file={cfg.pki / 'sa.key'}",
        f"--root-ca-file={cfg.pki / 'ca.crt'}",
        "--use-service-account-credentials=true",
        f"--cluster-signing-cert-file={cfg.pki / 'ca.crt'}",
        f"--cluster-signing-key-file={cfg.pki / 'ca.key'}",
        f"--service-cluster-ip-range={cfg.service_cidr}",
        "--allocate-node-cidrs=false",
        "--profiling=false",
        "--v=1",
    ]


def prepare(host: Host) -> None:
    pki.component_kubeconfig(host.cfg, USER)


def ready(host: Host) -> list[Readiness]:
    probe = ok_200("https://127.0.0.1:10257/healthz", ssl_ctx(host.cfg.pki, None, verify=False))
    return [Readiness(probe, 60, "healthy")]


COMPONENT = Component("kube-controller-manager", command, ready, prepare=prepare)
