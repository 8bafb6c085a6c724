"""etcd: plain HTTP on the loopback only, one member, no fsync (a throwaway test cluster)."""

from __future__ import annotations

from localcluster.components.base import Argv, Component, Readiness
from localcluster.config import Config
from localcluster.host import Host
from localcluster.probes import ok_200


def data_dir(cfg: Config) -> str:
    return str(cfg.state / "etcd")


def command(cfg: Config) -> Argv:
    client, peer = cfg.etcd_port, cfg.etcd_port + 10
    return [
        cfg.bin / "etcd",
        "--name=mlkube",
        f"--data-dir={data_dir(cfg)}",
        f"--listen-client-urls=http://127.0.0.1:{client}",
        f"--advertise-client-urls=http://127.0.0.1:{client}",
        f"--listen-peer-urls=http://127.0.0.1:{peer}",
        f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
        f"--initial-cluster=mlkube=http://127.0.0.1:{peer}",
        "--listen-metrics-urls=",
        "--quota-backend-bytes=2147483648",
        "--snapshot-count=10000",
        "--log-level=warn",
        "--unsafe-no-fsync=true",  # a throwaway test cluster: speed over durability
    ]


def prepare(host: Host) -> None:
    (host.cfg.state / "etcd").mkdir(parents=True, exist_ok=True)


def ready(host: Host) -> list[Readiness]:
    url = f"http://127.0.0.1:{host.cfg.etcd_port}/health"
    return [Readiness(ok_200(url, body='"health":"true"'), 60, "healthy")]


COMPONENT = Component("etcd", command, ready, prepare=prepare)
