"""What the local cluster is made of and where it lives: one frozen :class:`Config`, built once
from the environment (``MLKUBE_CLUSTER_*``) and ``versions.env``; every path and address is a
property of it."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

HERE = Path(__file__).resolve().parent.parent  # hack/cluster
REPO = HERE.parent.parent

NodeMode = Literal["real", "kwok", "none"]
NODE_MODES: tuple[NodeMode, ...] = ("real", "kwok", "none")

DEFAULT_CACHE = "/var/cache/mlkube-cluster"
DEFAULT_STATE = "/var/tmp/mlkube-cluster"
CONTEXT = "mlkube-local"  # the kube-context of every kubeconfig written here
CLUSTER_DOMAIN = "cluster.local"
EGRESS_CHAIN = "MLKUBE-CLUSTER-EGRESS"
# The mlkube images `make images` builds (localhost/mlkube-<name>).
IMAGES = ("mlflow", "train", "serve", "rollout")


class ConfigError(ValueError):
    """An MLKUBE_CLUSTER_* variable that cannot be used."""


def read_versions(path: Path) -> dict[str, str]:
    """``KEY=value`` lines of versions.env (comments and blank lines skipped)."""
    out: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            out[key] = value
    return out


def chart_app_version(chart_yaml: Path) -> str:
    """The chart's appVersion (the tag `make images` gives the mlkube images), read without a
    YAML library: the harness runs on the system's python3."""
    for line in chart_yaml.read_text().splitlines():
        if line.startswith("appVersion:"):
            return line.split(":", 1)[1].split("#", 1)[0].strip().strip("\"'")
    raise ConfigError(f"{chart_yaml} has no appVersion")


@dataclass(frozen=True)
class Config:
    k8s_version: str
    pause_image: str
    local_path_helper_image: str
    cache_root: Path  # MLKUBE_CLUSTER_CACHE
    state: Path  # MLKUBE_CLUSTER_STATE
    node_mode: NodeMode  # MLKUBE_CLUSTER_NODE
    node_name: str  # MLKUBE_CLUSTER_NODE_NAME
    pod_cidr: ipaddress.IPv4Network  # MLKUBE_CLUSTER_POD_CIDR
    node_ip: str  # MLKUBE_CLUSTER_NODE_IP (default: the pod network's first address)
    service_cidr: ipaddress.IPv4Network  # MLKUBE_CLUSTER_SERVICE_CIDR
    bridge: str  # MLKUBE_CLUSTER_BRIDGE
    api_port: int  # MLKUBE_CLUSTER_API_PORT
    etcd_port: int  # MLKUBE_CLUSTER_ETCD_PORT
    image_store: Path  # MLKUBE_CLUSTER_IMAGE_STORE (containerd's root, outlives `down`)
    images: tuple[str, ...]  # MLKUBE_CLUSTER_IMAGES
    image_tag: str  # MLKUBE_CLUSTER_IMAGE_TAG; empty: the newest plain `app_version` tag
    app_version: str  # the chart's appVersion
    here: Path = HERE
    repo: Path = REPO

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, here: Path = HERE, repo: Path = REPO
    ) -> Config:
        env = os.environ if environ is None else environ
        versions = read_versions(here / "versions.env")
        k8s = versions["K8S_VERSION"]
        cache_root = Path(env.get("MLKUBE_CLUSTER_CACHE", DEFAULT_CACHE))
        mode = env.get("MLKUBE_CLUSTER_NODE", "real")
        if mode not in NODE_MODES:
            raise ConfigError(f"MLKUBE_CLUSTER_NODE={mode!r}: use real, kwok or none")
        pod_cidr = _network(env, "MLKUBE_CLUSTER_POD_CIDR", "10.244.0.0/24")
        store = env.get("MLKUBE_CLUSTER_IMAGE_STORE", str(cache_root / k8s / "containerd-root"))
        return cls(
            k8s_version=k8s,
            pause_image=versions["PAUSE_IMAGE"],
            local_path_helper_image=versions["LOCAL_PATH_HELPER_IMAGE"],
            cache_root=cache_root,
            state=Path(env.get("MLKUBE_CLUSTER_STATE", DEFAULT_STATE)),
            node_mode=mode,  # narrowed to NodeMode by the check above
            node_name=env.get("MLKUBE_CLUSTER_NODE_NAME", "mlkube-node"),
            pod_cidr=pod_cidr,
            node_ip=env.get("MLKUBE_CLUSTER_NODE_IP", str(pod_cidr.network_address + 1)),
            service_cidr=_network(env, "MLKUBE_CLUSTER_SERVICE_CIDR", "10.96.0.0/16"),
            bridge=env.get("MLKUBE_CLUSTER_BRIDGE", "mlkbr0"),
            api_port=_port(env, "MLKUBE_CLUSTER_API_PORT", 6443),
            etcd_port=_port(env, "MLKUBE_CLUSTER_ETCD_PORT", 23790),
            image_store=Path(store),
            images=tuple(env.get("MLKUBE_CLUSTER_IMAGES", " ".join(IMAGES)).split()),
            image_tag=env.get("MLKUBE_CLUSTER_IMAGE_TAG", ""),
            app_version=chart_app_version(repo / "charts" / "mlkube" / "Chart.yaml"),
            here=here,
            repo=repo,
        )

    # --- where things are

    @property
    def cache(self) -> Path:
        """The build cache of this Kubernetes version: bin/, cni/, images/, stamps/."""
        return self.cache_root / self.k8s_version

    @property
    def bin(self) -> Path:
        return self.cache / "bin"

    @property
    def cni_bin(self) -> Path:
        return self.cache / "cni"

    @property
    def run(self) -> Path:
        return self.state / "run"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def pki(self) -> Path:
        return self.state / "pki"

    @property
    def kubeconfig(self) -> Path:
        return self.state / "kubeconfig"

    @property
    def context(self) -> str:
        return CONTEXT

    @property
    def volumes(self) -> Path:
        """Where local-path-provisioner keeps the PersistentVolumes' data (removed by `down`)."""
        return self.state / "volumes"

    @property
    def containerd_sock(self) -> Path:
        return self.run / "containerd" / "containerd.sock"

    # --- addresses

    @property
    def api_service_ip(self) -> str:
        return str(self.service_cidr.network_address + 1)

    @property
    def dns_service_ip(self) -> str:
        return str(self.service_cidr.network_address + 10)

    @property
    def api_url(self) -> str:
        return f"https://{self.node_ip}:{self.api_port}"

    def env(self) -> dict[str, str]:
        """What `cluster.py env` prints: where other tools find this cluster."""
        return {
            "kubeconfig": str(self.kubeconfig),
            "context": self.context,
            "logs": str(self.logs),
            "cache": str(self.cache),
            "state": str(self.state),
        }


def _network(env: Mapping[str, str], name: str, default: str) -> ipaddress.IPv4Network:
    value = env.get(name, default)
    try:
        return ipaddress.IPv4Network(value)
    except ValueError as exc:
        raise ConfigError(f"{name}={value!r}: not an IPv4 network ({exc})") from exc


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name, str(default))
    try:
        return int(value)
    except ValueError as exc:
        raise ConfigError(f"{name}={value!r}: not a port number") from exc
