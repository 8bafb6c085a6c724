"""kube-scheduler: secure port 10259 on the loopback, one instance (no leader election)."""

from __future__ import annotations

from localcluster import pki
from localcluster.components.base import Argv, Component, Readiness, kubeconfig_of
from localcluster.config import Config
from localcluster.host import Host
from localcluster.probes import ok_200, ssl_ctx

USER = "scheduler"


def command(cfg: Config) -> Argv:
    kc = kubeconfig_of(cfg, USER)
    return [
        cfg.bin / "kube-scheduler",
        f"--kubeconfig={kc}",
        f"--authentication-kubeconfig={kc}",
        f"--authorization-kubeconfig={kc}",
        "--bind-address=127.0.0.1",
        "--secure-port=10259",
        "--leader-elect=false",
        "--profiling=false",
        "--v=1",
    ]


def prepare(host: Host) -> None:
    pki.component_kubeconfig(host.cfg, USER)


def ready(host: Host) -> list[Readiness]:
    probe = ok_200("https://127.0.0.1:10259/healthz", ssl_ctx(host.cfg.pki, None, verify=False))
    return [Readiness(probe, 60, "healthy")]


COMPONENT = Component("kube-scheduler", command, ready, prepare=prepare)
