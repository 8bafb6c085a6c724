"""What a deploy is asked to do (from the command line) and the fixed names it works with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from deploy.localenv import cluster_script

Env = Literal["kind", "eks", "local"]
ENVS: tuple[Env, ...] = ("kind", "eks", "local")

# Build targets of images/Dockerfile, and the image each becomes (the contract with images/).
COMPONENTS = ("mlflow", "train", "serve", "rollout")

# Container engines that build the images, in the order `auto` tries them.
ENGINES = ("docker", "podman")
# The Dockerfile's default base (ARG PYTHON_IMAGE), and the one images/local-base.sh builds when
# that cannot be pulled (no registry, an air-gapped network, a mirror that lacks it).
DEFAULT_BASE_IMAGE = "python:3.11.17-slim-bookworm"
LOCAL_BASE_IMAGE = "mlkube-python-base:3.11-bookworm"

# cloud-provider-kind implements LoadBalancer Services and Ingress for kind clusters. It runs
# outside the cluster; we run its published image as a container next to the kind nodes.
CLOUD_PROVIDER_KIND_IMAGE = "registry.k8s.io/cloud-provider-kind/cloud-controller-manager:v0.11.1"
CLOUD_PROVIDER_KIND_CONTAINER = "mlkube-cloud-provider-kind"
INGRESS_CLASS_KIND = "cloud-provider-kind"
# kubeadm puts this label on control-plane nodes; load balancers skip labelled nodes, and a
# single-node kind cluster has no other node to send traffic to.
EXCLUDE_LB_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"

# The local cluster of hack/cluster (ENV=local): host processes on this machine, started by
# `hack/cluster/cluster.py up`; where its kubeconfig is and its context, `cluster.py env --json`
# says (deploy.localenv). Its node takes the images we import into its containerd (as
# kind's nodes do with `kind load`), under the names podman gives locally built images.
LOCAL_REGISTRY = "localhost"


@dataclass(frozen=True)
class Options:
    repo: Path
    env: Env = "kind"
    cluster: str = "mlkube"
    namespace: str = "mlkube"
    release: str = "mlkube"
    tag: str = ""  # empty: the chart's appVersion (plus the image id on kind, see images.py)
    registry: str = ""  # IMAGE_REGISTRY: where EKS pulls from
    values: tuple[Path, ...] = ()  # the user's overrides, applied last
    build: bool = True
    train: bool = True
    timeout: float = 600.0
    platform: str = ""  # e.g. linux/arm64 for Graviton nodes: built with buildx and pushed
    engine: str = ""  # docker or podman; empty: docker if its daemon answers, else podman
    base_image: str = ""  # PYTHON_IMAGE; empty: the Dockerfile's, else the local Debian base
    port: int = 5000  # local port of `ui`
    yes: bool = False  # `destroy` on EKS removes a real release: must be asked for
    artifacts: Path | None = None  # where `e2e` writes its diagnostics on failure

    @property
    def chart(self) -> Path:
        return self.repo / "charts" / "mlkube"

    @property
    def dockerfile(self) -> Path:
        return self.repo / "images" / "Dockerfile"

    @property
    def local_base_script(self) -> Path:
        return self.repo / "images" / "local-base.sh"

    @property
    def kind_config(self) -> Path:
        return self.repo / "deploy" / "kind-config.yaml"

    @property
    def local_cluster_script(self) -> Path:
        return cluster_script(self.repo)

    @property
    def image_registry(self) -> str:
        """Where the cluster takes our images from: the EKS registry they are pushed to, the
        local node's names for what we import (``localhost/...``), nothing on kind."""
        return {"eks": self.registry, "local": LOCAL_REGISTRY}.get(self.env, "")

    @property
    def kind_context(self) -> str:
        return f"kind-{self.cluster}"

    @property
    def env_values(self) -> Path:
        return self.chart / f"values-{self.env}.yaml"

    @property
    def values_files(self) -> tuple[Path, ...]:
        """In the order Helm applies them: the target's file, then the user's."""
        return (self.env_values, *self.values)


@dataclass(frozen=True)
class Image:
    component: str  # a build target of images/Dockerfile
    tag: str
    registry: str = ""  # empty on kind: the image is loaded into the nodes
    digest: str = ""  # sha256:... when known (pushed by buildx): deployed by digest

    @property
    def name(self) -> str:
        return f"mlkube-{self.component}"

    @property
    def repository(self) -> str:
        return f"{self.registry.rstrip('/')}/{self.name}" if self.registry else self.name

    @property
    def ref(self) -> str:
        if self.digest:
            return f"{self.repository}@{self.digest}"
        return f"{self.repository}:{self.tag}"


def chart_metadata(chart: Path) -> dict[str, Any]:
    path = chart / "Chart.yaml"
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{path} not found: is this the mlkube repository?") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a YAML mapping")
    return data


def app_version(chart: Path) -> str:
    version = chart_metadata(chart).get("appVersion")
    if not version:
        raise ValueError(f"{chart / 'Chart.yaml'} has no appVersion: the image tag comes from it")
    return str(version)


def check_release_tag(tag: str, chart: Path) -> str:
    """A release tag must be ``v`` + the chart's appVersion, so the images pushed under that
    tag are the ones the chart pulls. Returns the version; ValueError says what differs."""
    version = app_version(chart)
    if tag != f"v{version}":
        raise ValueError(
            f"tag {tag!r} does not match the chart's appVersion {version!r} "
            f"({chart / 'Chart.yaml'}): tag v{version}, or bump appVersion (and version) first"
        )
    return version


def load_values(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"values file {path} not found") from exc
    except yaml.YAMLError as exc:
        raise ValueError(f"values file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"values file {path} must hold a YAML mapping, not {type(data).__name__}")
    return data
