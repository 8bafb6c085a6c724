"""Traefik, the Ingress controller: a host process on NODE_IP:80, the cluster's default
IngressClass `traefik`; it proxies to pod IPs over the bridge, and reads the API as its
ServiceAccount (a token made at start)."""

from __future__ import annotations

import os

from localcluster import templates
from localcluster.components.base import Argv, Component, Readiness
from localcluster.config import Config
from localcluster.host import Host
from localcluster.probes import ok_200

PING = "127.0.0.1:18080"


def token_file(cfg: Config) -> str:
    return str(cfg.state / "traefik.token")


def command(cfg: Config) -> Argv:
    return [
        cfg.bin / "traefik",
        "--global.checknewversion=false",
        "--global.sendanonymoususage=false",
        f"--entrypoints.web.address={cfg.node_ip}:80",
        f"--entrypoints.traefik.address={PING}",
        "--ping=true",
        "--ping.entrypoint=traefik",
        "--log.level=INFO",
        "--providers.kubernetesingress=true",
        f"--providers.kubernetesingress.endpoint={cfg.api_url}",
        f"--providers.kubernetesingress.token={token_file(cfg)}",
        f"--providers.kubernetesingress.certauthfilepath={cfg.pki / 'ca.crt'}",
        f"--providers.kubernetesingress.ingressendpoint.ip={cfg.node_ip}",
    ]


def skip(cfg: Config) -> str | None:
    if (cfg.bin / "traefik").exists():
        return None
    return "not built (MLKUBE_CLUSTER_INGRESS=1 hack/cluster/build.sh): no Ingress controller"


def prepare(host: Host) -> None:
    host.apply(templates.manifest("traefik.yaml"))
    token = host.cfg.state / "traefik.token"
    made = host.kubectl("create", "token", "traefik", "-n", "kube-system", "--duration=24h")
    token.write_text(made.stdout.strip())
    os.chmod(token, 0o600)


def ready(host: Host) -> list[Readiness]:
    return [
        Readiness(
            ok_200(f"http://{PING}/ping"), 60, f"serving Ingresses on http://{host.cfg.node_ip}:80"
        )
    ]


COMPONENT = Component("traefik", command, ready, nodes=("real",), prepare=prepare, skip=skip)
