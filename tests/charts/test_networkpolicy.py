"""The NetworkPolicies allow exactly the architecture's flows, nothing more.

A small evaluator of the NetworkPolicy semantics (pod isolation per direction, peers by pod
and namespace labels or IP block, ports) asks, for every pair of the release's pods and every
port they declare, and for a few outside endpoints, whether traffic may flow; the answer must
be the architecture's list:

  ingress controller -> serving, {serving, training, operator and its webhook registration,
  helm tests} -> MLflow,
  MLflow -> operator webhook, MLflow -> Postgres (bundled), helm tests -> serving,
  operator -> API server, every pod -> cluster DNS, and the outside services the values name
  (S3, an external database or MLflow, a training data URL); Prometheus -> the /metrics of the
  operator and MLflow only when ``networkPolicy.metricsFrom`` names it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.charts.manifests import (
    CHART,
    NAMESPACE,
    Doc,
    Rendered,
    component,
    deep_merge,
    helm_template,
)

pytestmark = pytest.mark.charts

Flow = tuple[str, str, int, str]  # source, destination, port, protocol


@dataclass(frozen=True)
class Endpoint:
    name: str
    ip: str
    labels: dict[str, str] = field(default_factory=dict, hash=False)
    namespace: str | None = None  # None: outside the cluster
    ports: tuple[tuple[int, str], ...] = ()


NAMESPACE_LABELS = {
    NAMESPACE: {"kubernetes.io/metadata.name": NAMESPACE},
    "kube-system": {"kubernetes.io/metadata.name": "kube-system"},
    "ingress": {"kubernetes.io/metadata.name": "ingress"},
    "other": {"kubernetes.io/metadata.name": "other"},
    "monitoring": {"kubernetes.io/metadata.name": "monitoring"},
}

KUBE_DNS = Endpoint(
    "dns", "10.96.0.10", {"k8s-app": "kube-dns"}, "kube-system", ((53, "UDP"), (53, "TCP"))
)
# The API server as a NetworkPolicy engine sees it: one of the `kubernetes` EndpointSlice's
# addresses (the engines match after the Service's translation), never the Service IP (e.g.
# 172.20.0.1), which a policy naming it would leave the operator's watch cut off by.
API_SERVER = Endpoint("apiserver", "10.0.12.34", ports=((443, "TCP"), (6443, "TCP")))
INTERNET = Endpoint(
    "internet", "203.0.113.7", ports=((80, "TCP"), (443, "TCP"), (5000, "TCP"), (5432, "TCP"))
)
INGRESS_CONTROLLER = Endpoint("ingress-controller", "10.244.9.9", {"app": "proxy"}, "ingress")
OTHER_POD = Endpoint("other-pod", "10.244.8.8", {"app": "x"}, "other", ((8080, "TCP"),))
LOAD_BALANCER = Endpoint("load-balancer", "192.0.2.50")
PROMETHEUS = Endpoint(
    "prometheus", "10.244.7.7", {"app.kubernetes.io/name": "prometheus"}, "monitoring"
)
OUTSIDE = (KUBE_DNS, API_SERVER, INTERNET, OTHER_POD)
SOURCES_OUTSIDE = (INGRESS_CONTROLLER, LOAD_BALANCER, OTHER_POD, PROMETHEUS)
ANY_SOURCE = [s.name for s in SOURCES_OUTSIDE]


def _matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    selector = selector or {}
    assert "matchExpressions" not in selector, "the evaluator handles matchLabels only"
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def _peer_matches(peer: Doc, who: Endpoint) -> bool:
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        inside = ipaddress.ip_address(who.ip) in ipaddress.ip_network(block["cidr"])
        return inside and not any(
            ipaddress.ip_address(who.ip) in ipaddress.ip_network(e) for e in block.get("except", [])
        )
    if who.namespace is None:
        return False  # pod and namespace selectors match pods only
    if "namespaceSelector" in peer:
        if not _matches(peer["namespaceSelector"], NAMESPACE_LABELS[who.namespace]):
            return False
    elif who.namespace != NAMESPACE:
        return False  # a bare podSelector means the policy's own namespace
    return _matches(peer.get("podSelector"), who.labels)


def _port_matches(rule: Doc, port: int, protocol: str) -> bool:
    ports = rule.get("ports")
    if not ports:
        return True
    return any(
        p.get("protocol", "TCP") == protocol and p.get("port") in (None, port) for p in ports
    )


class Policies:
    def __init__(self, docs: list[Doc]) -> None:
        self.policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
        for p in self.policies:
            assert p["metadata"]["namespace"] == NAMESPACE

    def _isolating(self, pod: Endpoint, direction: str) -> list[Doc]:
        return [
            p
            for p in self.policies
            if pod.namespace == NAMESPACE
            and _matches(p["spec"]["podSelector"], pod.labels)
            and direction in p["spec"]["policyTypes"]
        ]

    def _allows(self, pod: Endpoint, direction: str, peer: Endpoint, port: int, proto: str) -> bool:
        if pod.namespace != NAMESPACE:
            return True  # outside the release: no policy of ours applies
        policies = self._isolating(pod, direction)
        if not policies:
            return True
        key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
        for policy in policies:
            for rule in policy["spec"].get(key) or []:
                peers = rule.get(peers_key)
                if (not peers or any(_peer_matches(x, peer) for x in peers)) and _port_matches(
                    rule, port, proto
                ):
                    return True
        return False

    def flow(self, src: Endpoint, dst: Endpoint, port: int, proto: str = "TCP") -> bool:
        return self._allows(src, "Egress", dst, port, proto) and self._allows(
            dst, "Ingress", src, port, proto
        )


def release_pods(rendered: Rendered) -> list[Endpoint]:
    pods: dict[str, Endpoint] = {}
    for i, (workload, template) in enumerate(rendered.pods()):
        ports = tuple(
            (p["containerPort"], p.get("protocol", "TCP"))
            for c in template["spec"]["containers"]
            for p in c.get("ports", [])
        )
        comp = component(workload)
        if comp in pods:  # the CronJob and the first-run Job: same pod labels
            assert pods[comp].labels == template["metadata"]["labels"]
            continue
        pods[comp] = Endpoint(
            comp, f"10.244.0.{i + 10}", template["metadata"]["labels"], NAMESPACE, ports
        )
    return list(pods.values())


def allowed_flows(rendered: Rendered) -> set[Flow]:
    policies = Policies(rendered.docs)
    pods = release_pods(rendered)
    names = {p.name for p in pods}
    flows: set[Flow] = set()
    for src in (*pods, *SOURCES_OUTSIDE):
        for dst in (*pods, *OUTSIDE):
            if src is dst or (src.name not in names and dst.name not in names):
                continue  # only flows that touch the release
            for port, proto in dst.ports:
                if policies.flow(src, dst, port, proto):
                    flows.add((src.name, dst.name, port, proto))
    return flows


def expected_flows(rendered: Rendered) -> set[Flow]:
    """The architecture's flows for these values, written out independently of the templates."""
    v = rendered.values
    comps = {component(w) for w, _ in rendered.pods()}
    flows: set[Flow] = {(c, "dns", 53, proto) for c in comps for proto in ("UDP", "TCP")}

    mlflow_port, serving_port, rollout_port = (
        v[c]["containerPort"] for c in ("mlflow", "serving", "rollout")
    )
    # metricsFrom names Prometheus' namespace and pods (asserted below, so the flows it adds
    # are known); empty: Prometheus gets nothing it would not get as any other outside source.
    scrapers = ["prometheus"] if v["networkPolicy"]["metricsFrom"] else []
    for peer in v["networkPolicy"]["metricsFrom"]:
        assert _peer_matches(peer, PROMETHEUS)
        assert not _peer_matches(peer, OTHER_POD)

    def to_mlflow(src: str) -> None:
        if v["mlflow"]["enabled"]:
            flows.add((src, "mlflow", mlflow_port, "TCP"))
        else:  # an external server: externalPort, else the port of its URI, to any address
            uri = urlsplit(v["mlflow"]["externalUri"])
            port = v["mlflow"]["externalPort"] or uri.port or (443 if uri.scheme == "https" else 80)
            for dst in (INTERNET, API_SERVER):
                if port in dict(dst.ports):
                    flows.add((src, dst.name, port, "TCP"))

    if "serving" in comps:
        to_mlflow("serving")
        if v["networkPolicy"]["servingFrom"]:
            sources = ["ingress-controller", *scrapers]
        else:
            sources = ANY_SOURCE
        flows.update((s, "serving", serving_port, "TCP") for s in sources)
        flows.add(("test", "serving", serving_port, "TCP"))
    if "training" in comps:
        to_mlflow("training")
        if v["training"]["data"].startswith(("http://", "https://")):
            flows.update({("training", "internet", p, "TCP") for p in (80, 443)})
            flows.update({("training", "apiserver", 443, "TCP")})
    if "rollout" in comps:
        to_mlflow("rollout")
        cidrs = v["networkPolicy"]["apiServer"]["cidrs"]
        for port in v["networkPolicy"]["apiServer"]["ports"]:
            flows.add(("rollout", "apiserver", port, "TCP"))
            if not cidrs and port in dict(INTERNET.ports):
                flows.add(("rollout", "internet", port, "TCP"))
        if "serving" in comps:  # why a rollout's pods are not ready: their /healthz/ready
            flows.add(("rollout", "serving", v["serving"]["containerPort"], "TCP"))
        if v["mlflow"]["enabled"]:
            flows.add(("mlflow", "rollout", rollout_port, "TCP"))
            flows.update((s, "rollout", rollout_port, "TCP") for s in scrapers)
        else:  # an external MLflow posts webhooks from outside
            flows.update((s, "rollout", rollout_port, "TCP") for s in ANY_SOURCE)
    if "rollout-webhook" in comps:  # the hook Job that registers the webhook in MLflow
        to_mlflow("rollout-webhook")
    if "mlflow" in comps:
        flows.add(("test", "mlflow", mlflow_port, "TCP"))
        flows.update((s, "mlflow", mlflow_port, "TCP") for s in scrapers)
        backend = v["mlflow"]["backend"]
        if backend["type"] == "postgres":
            flows.add(("mlflow", "postgres", 5432, "TCP"))
        elif backend["type"] == "external":
            flows.add(("mlflow", "internet", backend["port"], "TCP"))
        if v["mlflow"]["artifacts"]["type"] == "s3":
            flows.update({("mlflow", "internet", 443, "TCP"), ("mlflow", "apiserver", 443, "TCP")})
    return flows


def test_every_release_pod_is_denied_by_default(rendered: Rendered) -> None:
    if not rendered.values["networkPolicy"]["enabled"]:
        assert not rendered.of_kind("NetworkPolicy")
        return
    policies = Policies(rendered.docs)
    for pod in release_pods(rendered):
        for direction in ("Ingress", "Egress"):
            assert policies._isolating(pod, direction), (
                f"{pod.name} is not isolated for {direction}"
            )


def test_network_policies_allow_exactly_the_architecture(rendered: Rendered) -> None:
    if not rendered.values["networkPolicy"]["enabled"]:
        assert not rendered.of_kind("NetworkPolicy")
        return
    allowed, expected = allowed_flows(rendered), expected_flows(rendered)
    assert allowed - expected == set(), (
        f"flows the architecture does not have: {allowed - expected}"
    )
    assert expected - allowed == set(), f"flows the policies block: {expected - allowed}"


def test_external_mlflow_port_overrides_the_uris() -> None:
    """A NetworkPolicy matches the destination pod's port, not the Service port a URI names:
    ``mlflow.externalPort`` opens that port instead of the URI's (here 443)."""
    path = CHART / "ci" / "external-mlflow-values.yaml"
    proc = helm_template("-f", str(path), "--set", "mlflow.externalPort=5000")
    assert proc.returncode == 0, proc.stderr
    values = deep_merge(
        deep_merge(
            yaml.safe_load((CHART / "values.yaml").read_text()), yaml.safe_load(path.read_text())
        ),
        {"mlflow": {"externalPort": 5000}},
    )
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    rendered = Rendered("external-port", path, values, proc.stdout, docs)
    allowed = allowed_flows(rendered)
    assert allowed == expected_flows(rendered)
    assert ("training", "internet", 5000, "TCP") in allowed
    assert ("training", "internet", 443, "TCP") not in allowed


def test_evaluator_sees_a_blocked_flow() -> None:
    """Canary: with only the default deny, nothing flows, and an allow rule opens one port."""
    labels = {"app.kubernetes.io/name": "mlkube", "app.kubernetes.io/component": "a"}
    deny = {
        "kind": "NetworkPolicy",
        "metadata": {"namespace": NAMESPACE},
        "spec": {"podSelector": {"matchLabels": labels}, "policyTypes": ["Ingress", "Egress"]},
    }
    a = Endpoint("a", "10.0.0.1", labels, NAMESPACE, ((80, "TCP"),))
    b = Endpoint("b", "10.0.0.2", {**labels, "app.kubernetes.io/component": "b"}, NAMESPACE)
    assert not Policies([deny]).flow(b, a, 80)
    allow = {
        "kind": "NetworkPolicy",
        "metadata": {"namespace": NAMESPACE},
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/component": "a"}},
            "policyTypes": ["Ingress"],
            "ingress": [{"ports": [{"port": 80}]}],
        },
    }
    assert Policies([deny, allow]).flow(b, a, 80)
    assert not Policies([deny, allow]).flow(b, a, 81)
    assert not Policies([deny, allow]).flow(a, b, 80)
