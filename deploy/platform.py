"""What the cluster gives the release and the chart cannot know: the API server's real endpoint
addresses (for the operator's egress), and on EKS the add-ons the chart relies on without
installing them (metrics-server for the HPA, the VPC CNI's NetworkPolicy enforcement) and the
namespace label that turns on the AWS Load Balancer Controller's pod readiness gates."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from typing import Any

from deploy.context import Ctx
from deploy.helm import merge_values
from deploy.release import release_values

# The `kubernetes` Service's EndpointSlice: where the API server really listens. A NetworkPolicy
# engine matches the address after the Service's translation, so the Service IP (e.g.
# 172.20.0.1) in networkPolicy.apiServer.cidrs would cut the operator's watch off silently.
API_SERVER_SLICES = (
    "endpointslice",
    "-n",
    "default",
    "-l",
    "kubernetes.io/service-name=kubernetes",
)

# On the namespace: the AWS Load Balancer Controller's webhook adds a readiness gate to every
# pod created there that backs a target group, so a new serving pod counts as ready only once
# the ALB sees it healthy (IP targets only).
READINESS_GATE_LABEL = "elbv2.k8s.aws/pod-readiness-gate-inject"

# The VPC CNI's network policy agent (a container of the aws-node DaemonSet: its name differs
# between the EKS add-on and the Helm chart) and the ConfigMap key of the policy controller.
NP_AGENT_CONTAINERS = ("aws-eks-nodeagent", "aws-network-policy-agent")
NP_AGENT_FLAG = "--enable-network-policy"
NP_CONTROLLER_KEY = "enable-network-policy-controller"


def _json(text: str) -> dict[str, Any] | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def endpoint_cidrs(slices: Mapping[str, Any]) -> tuple[list[str], list[int]]:
    """The addresses (as /32 or /128 CIDRs) and TCP ports of the API server's EndpointSlices;
    endpoints reported not ready are left out."""
    cidrs: set[str] = set()
    ports: set[int] = set()
    for item in slices.get("items") or []:
        if not isinstance(item, dict) or item.get("addressType") not in ("IPv4", "IPv6"):
            continue
        for endpoint in item.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready") is False:
                continue
            for address in endpoint.get("addresses") or []:
                try:
                    ip = ipaddress.ip_address(address)
                except ValueError:
                    continue
                cidrs.add(f"{ip}/{ip.max_prefixlen}")
        for port in item.get("ports") or []:
            if port.get("protocol", "TCP") == "TCP" and isinstance(port.get("port"), int):
                ports.add(port["port"])
    return sorted(cidrs, key=lambda c: ipaddress.ip_network(c)), sorted(ports)


def api_server_endpoints(ctx: Ctx) -> None:
    """networkPolicy.apiServer.{cidrs,ports} from the `kubernetes` EndpointSlice, as a values
    layer between the target's file and the user's (whose files still win)."""
    found = ctx.kubectl("get", *API_SERVER_SLICES, "-o", "json", check=False)
    cidrs, ports = endpoint_cidrs(_json(found.stdout) or {}) if found.ok else ([], [])
    if not cidrs or not ports:
        reason = found.stderr.strip().splitlines()[-1:] if not found.ok else ["no ready address"]
        ctx.console.warn(
            "could not read the API server's endpoints (kubectl get "
            + " ".join(API_SERVER_SLICES)
            + f": {' '.join(reason)}): the operator may reach any address on the ports of "
            "networkPolicy.apiServer.ports"
        )
        return
    ctx.state.release.cluster_values = merge_values(
        ctx.state.release.cluster_values,
        {"networkPolicy": {"apiServer": {"cidrs": cidrs, "ports": ports}}},
    )
    ctx.console.info(
        f"the operator may reach the API server at {', '.join(cidrs)} on port "
        + ", ".join(map(str, ports))
        + " (networkPolicy.apiServer)"
    )
    if ctx.opts.env == "eks":
        ctx.console.info(
            "EKS replaces these control-plane network interfaces on a cluster version update: "
            f"run make deploy{ctx.make_env} again after one"
        )


def _network_policy_problems(ctx: Ctx) -> list[str]:
    """Why the VPC CNI would not enforce NetworkPolicies (empty: it does)."""
    ds = ctx.kubectl("get", "daemonset", "aws-node", "-n", "kube-system", "-o", "json", check=False)
    daemonset = _json(ds.stdout) if ds.ok else None
    if daemonset is None:
        return [
            "no aws-node DaemonSet (the VPC CNI) in kube-system: the NetworkPolicies are enforced "
            "only if the cluster's CNI enforces them (e.g. Calico, Cilium)"
        ]
    containers = daemonset.get("spec", {}).get("template", {}).get("spec", {}).get("containers")
    agents = [
        c
        for c in containers or []
        if c.get("name") in NP_AGENT_CONTAINERS
        or any(str(a).startswith(NP_AGENT_FLAG + "=") for a in c.get("args") or [])
    ]
    turn_on = (
        'turn it on: the vpc-cni add-on\'s configuration {"enableNetworkPolicy": "true"} '
        "(or the aws-vpc-cni Helm chart's enableNetworkPolicy=true)"
    )
    if not agents:
        return [
            "aws-node has no network policy agent (VPC CNI older than v1.14): the "
            f"NetworkPolicies are not enforced; update the vpc-cni add-on and {turn_on}"
        ]
    if not any(f"{NP_AGENT_FLAG}=true" in (a.get("args") or []) for a in agents):
        return [
            f"the VPC CNI's network policy agent runs without {NP_AGENT_FLAG}=true: the "
            f"NetworkPolicies are not enforced; {turn_on}"
        ]
    cm = ctx.kubectl(
        "get", "configmap", "amazon-vpc-cni", "-n", "kube-system", "-o", "json", check=False
    )
    data = ((_json(cm.stdout) if cm.ok else None) or {}).get("data") or {}
    if str(data.get(NP_CONTROLLER_KEY, "")).lower() != "true":
        return [
            f'the amazon-vpc-cni ConfigMap does not set {NP_CONTROLLER_KEY}: "true": the '
            f"network policy controller does not translate the NetworkPolicies; {turn_on}"
        ]
    return []


def eks_addons(ctx: Ctx) -> None:
    """What the chart relies on and EKS does not run by default; said plainly, never fatal."""
    values = release_values(ctx)
    serving = values.get("serving") or {}
    if serving.get("enabled", True) and (serving.get("autoscaling") or {}).get("enabled"):
        if ctx.kubectl("get", "--raw", "/apis/metrics.k8s.io/v1beta1", check=False).ok:
            ctx.console.info("metrics API answers: the serving HPA can scale")
        else:
            ctx.console.warn(
                "the metrics API (/apis/metrics.k8s.io/v1beta1) does not answer: the serving "
                "HPA reads no CPU and never scales; install metrics-server (the EKS add-on "
                "metrics-server, or the kubernetes-sigs/metrics-server chart)"
            )
    if (values.get("networkPolicy") or {}).get("enabled", True):
        problems = _network_policy_problems(ctx)
        for problem in problems:
            ctx.console.warn(problem)
        if not problems:
            ctx.console.info("the VPC CNI enforces NetworkPolicies")


def alb_readiness_gates(ctx: Ctx) -> None:
    """Label the release's namespace (created if missing) so the AWS Load Balancer Controller
    injects its pod readiness gate: a rolling update then waits until each new pod is healthy in
    the ALB's target group before it stops an old one."""
    serving = release_values(ctx).get("serving") or {}
    ingress = serving.get("ingress") or {}
    if not (serving.get("enabled", True) and ingress.get("enabled", True)) or (
        ingress.get("className") != "alb"
    ):
        ctx.console.info("the Ingress is not the ALB's: no readiness gate to turn on")
        return
    ns = ctx.opts.namespace
    if not ctx.kubectl("get", "namespace", ns, check=False).ok:
        ctx.kubectl("create", "namespace", ns)
    ctx.kubectl("label", "namespace", ns, f"{READINESS_GATE_LABEL}=enabled", "--overwrite")
    ctx.console.info(
        f"namespace {ns}: {READINESS_GATE_LABEL}=enabled (serving pods created from now on wait "
        "for the ALB's health check before they count as ready)"
    )
