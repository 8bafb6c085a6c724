"""What the steps learn and later steps use, one typed record per concern.

A step writes only its own concern's record (``ctx.state.images.built``, ``ctx.state.e2e.model``);
mypy checks every read and write."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from deploy.e2e.load import LoadReport
from deploy.localenv import LocalCluster
from deploy.options import Image


@dataclass
class ImagesState:
    engine: str = "docker"  # the container engine that builds (found by the engine step)
    built: list[Image] = field(default_factory=list)  # built, or --no-build's planned ones


@dataclass
class ReleaseState:
    values: dict[str, Any] = field(default_factory=dict)  # what Helm got, all layers merged
    # What the cluster dictates (the API server's endpoints), applied before the user's files.
    cluster_values: dict[str, Any] = field(default_factory=dict)
    revision: int | None = None  # the revision `helm upgrade --install` made
    training_job: str = ""  # the Job a training step created from the CronJob


@dataclass
class IngressState:
    url: str = ""  # http://<address><path prefix>, found on the release's Ingress
    headers: dict[str, str] = field(default_factory=dict)  # the Host its rule expects, if any


@dataclass(frozen=True)
class Candidate:
    run_id: str
    version: str


@dataclass
class E2EState:
    model: str = ""  # the registered model the serving Deployment follows
    tracking_uri: str = ""  # MLflow through a port-forward
    weak_version: str = ""  # the dummy champion forced to production
    candidate: Candidate | None = None  # the better model, registered, not promoted yet
    load: LoadReport | None = None  # the load that ran during the rollout
    cleanups: list[Callable[[], None]] = field(default_factory=list)  # port-forwards, the load


@dataclass
class State:
    context: str = ""  # the kube-context every kubectl and Helm call names
    local: LocalCluster | None = None  # ENV=local: where its cluster is (`cluster.py env`)
    images: ImagesState = field(default_factory=ImagesState)
    release: ReleaseState = field(default_factory=ReleaseState)
    ingress: IngressState = field(default_factory=IngressState)
    e2e: E2EState = field(default_factory=E2EState)
