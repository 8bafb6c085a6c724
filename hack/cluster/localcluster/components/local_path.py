"""local-path-provisioner, as kind runs it: dynamic hostPath volumes under the state dir's
volumes/ for the default StorageClass "standard"; its helper pods run the image of
src/local-path-helper."""

from __future__ import annotations

from localcluster import pki, templates
from localcluster.components.base import Argv, Component, Readiness, kubeconfig_of
from localcluster.config import Config
from localcluster.host import Host

NAME = "local-path-provisioner"
USER = "local-path"


def config_file(cfg: Config) -> str:
    return str(cfg.state / "local-path.json")


def helper_pod_file(cfg: Config) -> str:
    return str(cfg.state / "local-path-helper-pod.yaml")


def command(cfg: Config) -> Argv:
    # Out of the cluster it logs "failed to save helper-pod-... logs: unable to load in-cluster
    # configuration" after each volume: only copying the helper pod's log into its own fails.
    return [
        cfg.bin / "local-path-provisioner",
        "start",
        f"--kubeconfig={kubeconfig_of(cfg, USER)}",
        f"--config={config_file(cfg)}",
        f"--helper-pod-file={helper_pod_file(cfg)}",
        "--namespace=local-path-storage",
        "--provisioner-name=rancher.io/local-path",
        "--service-account-name=local-path-provisioner-service-account",
    ]


def prepare(host: Host) -> None:
    cfg = host.cfg
    host.apply(templates.manifest("local-path.yaml"))
    cfg.volumes.mkdir(parents=True, exist_ok=True)
    (cfg.state / "local-path.json").write_text(
        templates.config("local-path.json", volumes=cfg.volumes)
    )
    (cfg.state / "local-path-helper-pod.yaml").write_text(
        templates.config("local-path-helper-pod.yaml", image=cfg.local_path_helper_image)
    )
    pki.component_kubeconfig(cfg, USER)


def ready(host: Host) -> list[Readiness]:
    def started() -> bool:
        log = host.log_tail(NAME, 200)
        return "Starting provisioner controller" in log or "Started provisioner controller" in log

    return [Readiness(started, 60, 'provisioning volumes of StorageClass "standard"')]


COMPONENT = Component(NAME, command, ready, nodes=("real",), prepare=prepare)
