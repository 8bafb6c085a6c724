"""The one ordered component list that `up`, `down` (reversed) and `status` share, each
component's command line and readiness, and the files they are started with."""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from localcluster import commands
from localcluster.components import (
    COMPONENTS,
    by_name,
    containerd,
    coredns,
    down_order,
    etcd,
    kube_proxy,
    kubelet,
    local_path,
    status_order,
    up_order,
)
from localcluster.components.base import Component, Readiness
from localcluster.config import Config
from localcluster.host import Host
from localcluster.images import pick_ref

CONTROL_PLANE = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"]
REAL_NODE = [
    "containerd",
    "kubelet",
    "kube-proxy",
    "coredns",
    "local-path-provisioner",
    "traefik",
]


def names(components: Sequence[Component]) -> list[str]:
    return [c.name for c in components]


def test_up_starts_what_each_node_mode_runs_in_order() -> None:
    assert names(up_order("real")) == CONTROL_PLANE + REAL_NODE
    assert names(up_order("kwok")) == [*CONTROL_PLANE, "kwok"]
    assert names(up_order("none")) == CONTROL_PLANE


def test_down_stops_every_component_in_the_reverse_order() -> None:
    assert names(down_order()) == names(COMPONENTS)[::-1]
    stopped = names(down_order())
    # the kubelet goes before containerd, which removes the pods through the CRI as it goes
    assert stopped.index("kubelet") < stopped.index("containerd") < stopped.index("etcd")
    assert by_name("containerd").before_stop is containerd.remove_pods


def test_status_reports_every_component_in_the_same_order() -> None:
    assert names(status_order()) == [*CONTROL_PLANE, *REAL_NODE, "kwok"]
    assert "local-path-provisioner" in names(status_order())
    assert len(set(names(COMPONENTS))) == len(COMPONENTS)


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    env = {"MLKUBE_CLUSTER_STATE": str(tmp_path / "state"), "MLKUBE_CLUSTER_CACHE": "/c"}
    return Config.from_env(env)


def test_status_lists_the_components_with_a_pidfile(cfg: Config) -> None:
    host = Host(cfg)
    cfg.run.mkdir(parents=True)
    for name in ("etcd", "local-path-provisioner"):
        host.pidfile(name).write_text(f"{os.getpid()}\n")
    host.pidfile("kubelet").write_text("999999999\n")

    lines = commands.status_lines(host)

    assert [line.split()[0] for line in lines] == ["etcd", "kubelet", "local-path-provisioner"]
    assert lines[1].endswith("DEAD")
    assert lines[2].endswith("running")


def test_command_lines_come_from_the_config(cfg: Config) -> None:
    argv = [str(a) for a in etcd.COMPONENT.command(cfg)]
    assert argv[0] == "/c/" + cfg.k8s_version + "/bin/etcd"
    assert "--listen-client-urls=http://127.0.0.1:23790" in argv
    assert "--listen-peer-urls=http://127.0.0.1:23800" in argv
    api = [str(a) for a in by_name("kube-apiserver").command(cfg)]
    assert f"--bind-address={cfg.node_ip}" in api
    assert f"--service-cluster-ip-range={cfg.service_cidr}" in api
    kubelet_argv = [str(a) for a in kubelet.COMPONENT.command(cfg)]
    assert f"--kubeconfig={cfg.state / 'kubelet.kubeconfig'}" in kubelet_argv
    for c in COMPONENTS:
        assert str(c.command(cfg)[0]).startswith(str(cfg.bin)), c.name


def test_the_configs_are_filled_and_parse(cfg: Config) -> None:
    toml = tomllib.loads(containerd.config_toml(cfg))
    assert toml["root"] == str(cfg.image_store)
    assert toml["grpc"]["address"] == str(cfg.containerd_sock)
    cri = toml["plugins"]["io.containerd.cri.v1.images"]
    assert cri["pinned_images"]["sandbox"] == cfg.pause_image
    conflist = json.loads(containerd.cni_conflist(cfg))
    assert conflist["plugins"][0]["ipam"]["ranges"] == [
        [{"subnet": str(cfg.pod_cidr), "gateway": cfg.node_ip}]
    ]
    kubelet_cfg = yaml.safe_load(kubelet.config_yaml(cfg))
    assert kubelet_cfg["clusterDNS"] == [cfg.dns_service_ip]
    assert kubelet_cfg["failCgroupV1"] is False
    proxy = yaml.safe_load(kube_proxy.config_yaml(cfg))
    assert proxy["nodePortAddresses"] == [f"{cfg.node_ip}/32"]
    assert f"bind {cfg.node_ip}" in coredns.corefile(cfg)
    assert "forward" not in coredns.corefile(cfg)


class Recording(Host):
    """A host that records what a component asks of it, and starts nothing."""

    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        self.did: list[tuple[str, ...]] = []

    def start(self, name: str, cmd: Sequence[Any], env: dict[str, str] | None = None) -> int:
        self.did.append(("start", name))
        return 1

    def wait_for(self, name: str, check: Any, timeout: float, what: str) -> None:
        self.did.append(("wait", name, what))

    def apply(self, manifest: str) -> None:
        self.did.append(("apply", yaml.safe_load_all(manifest).__next__()["kind"]))

    def say(self, msg: str) -> None:
        self.did.append(("say", msg))


def test_a_component_is_prepared_started_then_checked(cfg: Config) -> None:
    host = Recording(cfg)
    cfg.state.mkdir(parents=True)

    commands.start_component(host, local_path.COMPONENT)
    commands.start_component(host, by_name("traefik"))  # not built: skipped, and said so

    assert host.did[:3] == [
        ("apply", "Namespace"),
        ("start", "local-path-provisioner"),
        ("wait", "local-path-provisioner", 'provisioning volumes of StorageClass "standard"'),
    ]
    assert (cfg.state / "local-path.kubeconfig").is_file()
    assert json.loads((cfg.state / "local-path.json").read_text())["nodePathMap"][0]["paths"] == [
        str(cfg.volumes)
    ]
    assert host.did[3][0] == "say"
    assert "traefik: not built" in host.did[3][1]
    assert len(host.did) == 4


def test_readiness_checks_name_what_they_prove(cfg: Config) -> None:
    host = Host(cfg)  # no PKI yet: only the components whose checks need no certificate
    ready = {c.name: c.ready(host) for c in (etcd.COMPONENT, kubelet.COMPONENT, coredns.COMPONENT)}
    whats = {name: [r.what for r in checks] for name, checks in ready.items()}

    assert whats["etcd"] == ["healthy"]
    assert whats["kubelet"] == ["healthy", f"node {cfg.node_name} Ready"]
    assert whats["coredns"][1] == f"answers on the kube-dns Service {cfg.dns_service_ip}"
    assert all(isinstance(r, Readiness) for checks in ready.values() for r in checks)


def test_the_image_picked_is_the_plain_app_version_tag() -> None:
    listed = ["localhost/mlkube-serve:0.2.0-abc123", "localhost/mlkube-serve:0.2.0"]

    assert pick_ref("serve", listed, "0.2.0") == "localhost/mlkube-serve:0.2.0"
    assert pick_ref("serve", listed[:1], "0.2.0") == listed[0]
    assert pick_ref("serve", [], "0.2.0") is None
