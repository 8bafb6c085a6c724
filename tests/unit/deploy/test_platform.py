"""What the deploy learns from the cluster before the release: the API server's real endpoints
for the operator's egress (every target); on EKS the add-ons the chart relies on (said, never
fatal) and the namespace label of the ALB's readiness gates; and a Helm timeout that outlasts
the chart's webhook hook."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from deploy.options import Options
from deploy.plans import plan_deploy
from deploy.runner import run_steps
from tests.unit.deploy.fakes import FakeCommands, FakeHelm, fail, make_ctx, ok
from tests.unit.deploy.test_deploy import cluster_world, image_id, kind_world, ready_http

SLICES = "kubectl get endpointslice -n default -l kubernetes.io/service-name=kubernetes"
EKS_CONTEXT = "arn:aws:eks:eu-west-1:1:cluster/prod"


def endpoint_slices(*slices: tuple[str, list[tuple[str, bool | None]], int]) -> str:
    """`kubectl get endpointslice -o json`: (addressType, [(address, ready)], port) each."""
    items = []
    for kind, endpoints, port in slices:
        items.append(
            {
                "addressType": kind,
                "endpoints": [
                    {"addresses": [a], **({} if r is None else {"conditions": {"ready": r}})}
                    for a, r in endpoints
                ],
                "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
            }
        )
    return json.dumps({"items": items})


def aws_node(*agent_args: str, agent: str | None = "aws-eks-nodeagent") -> str:
    containers: list[dict[str, Any]] = [{"name": "aws-node", "env": []}]
    if agent:
        containers.append({"name": agent, "args": ["--enable-ipv6=false", *agent_args]})
    return json.dumps({"spec": {"template": {"spec": {"containers": containers}}}})


def vpc_cni_config(**data: str) -> str:
    return json.dumps({"data": data})


def eks_world(
    *,
    metrics: bool = True,
    daemonset: str | None = None,
    config: str | None = None,
    namespace_exists: bool = True,
) -> FakeCommands:
    cmds = cluster_world(FakeCommands())
    cmds.on("docker", "info", answer=ok("27.3.1"))
    cmds.on("docker", "image", "inspect", answer=lambda w: ok(image_id(w) + "\n"))
    cmds.on("kubectl", "config", "current-context", answer=ok(EKS_CONTEXT + "\n"))
    cmds.on(
        "kubectl get --raw /apis/metrics.k8s.io/v1beta1",
        answer=ok("{}")
        if metrics
        else fail("Error from server (NotFound): the server could not find the requested resource"),
    )
    enabled = aws_node("--enable-network-policy=true")
    cmds.on("kubectl get daemonset aws-node", answer=ok(daemonset or enabled))
    cmds.on(
        "kubectl get configmap amazon-vpc-cni",
        answer=ok(config or vpc_cni_config(**{"enable-network-policy-controller": "true"})),
    )
    cmds.on(
        "kubectl get namespace mlkube",
        answer=ok("namespace/mlkube") if namespace_exists else fail("NotFound"),
    )
    cmds.on(
        SLICES,
        answer=ok(
            endpoint_slices(
                ("IPv4", [("10.0.12.34", True), ("10.0.45.67", None), ("10.0.9.9", False)], 443)
            )
        ),
    )
    return cmds


def deploy(opts: Options, cmds: FakeCommands) -> tuple[int, FakeHelm, str]:
    helm = FakeHelm()
    ctx, out, _ = make_ctx(opts, cmds, helm, http=ready_http())
    code = run_steps(plan_deploy(opts), ctx)
    return code, helm, out.getvalue()


def eks(repo: Path, *values: Path) -> Options:
    return Options(repo=repo, env="eks", registry="123456789012.dkr.ecr.eu-west-1.amazonaws.com",
                   values=values)  # fmt: skip


# --- the operator's egress to the API server ---------------------------------------------


def test_kind_operator_egress_names_the_api_servers_endpoint(repo: Path) -> None:
    cmds = kind_world()
    cmds.on(SLICES, answer=ok(endpoint_slices(("IPv4", [("172.18.0.2", True)], 6443))))
    code, helm, text = deploy(Options(repo=repo), cmds)

    assert code == 0, text
    values = helm.calls[0][1]["values"]
    # The endpoint's address and port, not the `kubernetes` Service's 10.96.0.1:443: policy
    # engines match after the Service's translation.
    assert values["networkPolicy"]["apiServer"] == {"cidrs": ["172.18.0.2/32"], "ports": [6443]}
    assert cmds.index(*SLICES.split()) < cmds.index("kubectl", "rollout", "status")
    assert "the operator may reach the API server at 172.18.0.2/32 on port 6443" in text


def test_eks_operator_egress_leaves_out_unready_endpoints_and_says_when_to_redeploy(
    repo: Path,
) -> None:
    code, helm, text = deploy(eks(repo), eks_world())

    assert code == 0, text
    api = helm.calls[0][1]["values"]["networkPolicy"]["apiServer"]
    assert api == {"cidrs": ["10.0.12.34/32", "10.0.45.67/32"], "ports": [443]}
    assert "run make deploy ENV=eks again after one" in text


def test_ipv6_endpoints_are_single_address_cidrs(repo: Path) -> None:
    cmds = kind_world()
    cmds.on(SLICES, answer=ok(endpoint_slices(("IPv6", [("fd00:10:96::2", True)], 6443))))
    code, helm, text = deploy(Options(repo=repo), cmds)

    assert code == 0, text
    assert helm.calls[0][1]["values"]["networkPolicy"]["apiServer"]["cidrs"] == [
        "fd00:10:96::2/128"
    ]


def test_the_users_values_win_over_the_endpoints(repo: Path, tmp_path: Path) -> None:
    mine = tmp_path / "mine.yaml"
    subnets = ["10.0.0.0/24", "10.0.1.0/24"]
    mine.write_text(yaml.safe_dump({"networkPolicy": {"apiServer": {"cidrs": subnets}}}))
    code, helm, text = deploy(eks(repo, mine), eks_world())

    assert code == 0, text
    assert helm.calls[0][1]["values"]["networkPolicy"]["apiServer"] == {
        "cidrs": subnets,
        "ports": [443],
    }


def test_unreadable_endpoints_warn_and_leave_the_charts_value(repo: Path) -> None:
    cmds = kind_world()
    cmds.on(SLICES, answer=fail('endpointslices.discovery.k8s.io is forbidden: User "me"'))
    code, helm, text = deploy(Options(repo=repo), cmds)

    assert code == 0, text
    assert "networkPolicy" not in helm.calls[0][1]["values"]
    assert "    ! could not read the API server's endpoints" in text
    assert "is forbidden" in text


# --- EKS: the add-ons the chart relies on ---------------------------------------------------


def test_eks_names_a_missing_metrics_server_and_policy_enforcement_without_failing(
    repo: Path,
) -> None:
    mine = repo / "hpa.yaml"
    mine.write_text(yaml.safe_dump({"serving": {"autoscaling": {"enabled": True}}}))
    cmds = eks_world(metrics=False, daemonset=aws_node("--enable-network-policy=false"))
    code, helm, text = deploy(eks(repo, mine), cmds)

    assert code == 0, text  # warnings, not failures: the release is still installed
    assert helm.calls
    warnings = [line for line in text.splitlines() if line.startswith("    ! ")]
    assert any("HPA reads no CPU and never scales" in w and "metrics-server" in w for w in warnings)
    assert any(
        "--enable-network-policy=true" in w
        and "NetworkPolicies are not enforced" in w
        and '{"enableNetworkPolicy": "true"}' in w
        for w in warnings
    ), warnings
    # Checked before anything is built: the user reads it first.
    assert cmds.index("kubectl", "get", "--raw", "/apis/metrics.k8s.io/v1beta1") < cmds.index(
        "docker", "build"
    )


def test_eks_with_its_add_ons_says_so(repo: Path) -> None:
    mine = repo / "hpa.yaml"
    mine.write_text(yaml.safe_dump({"serving": {"autoscaling": {"enabled": True}}}))
    code, _, text = deploy(eks(repo, mine), eks_world())

    assert code == 0, text
    assert "metrics API answers: the serving HPA can scale" in text
    assert "the VPC CNI enforces NetworkPolicies" in text
    assert "    ! " not in text


def test_eks_without_the_hpa_does_not_ask_for_metrics(repo: Path) -> None:
    cmds = eks_world(metrics=False)
    code, _, text = deploy(eks(repo), cmds)

    assert code == 0, text
    assert not cmds.ran("kubectl", "get", "--raw", "/apis/metrics.k8s.io/v1beta1")


def test_eks_network_policy_gaps_are_named(repo: Path) -> None:
    cases = {
        "no aws-node DaemonSet (the VPC CNI)": eks_world().on(
            "kubectl get daemonset aws-node", answer=fail("NotFound")
        ),
        "aws-node has no network policy agent (VPC CNI older than v1.14)": eks_world(
            daemonset=aws_node(agent=None)
        ),
        'does not set enable-network-policy-controller: "true"': eks_world(config=vpc_cni_config()),
    }
    for said, cmds in cases.items():
        code, _, text = deploy(eks(repo), cmds)
        assert code == 0, text
        assert any(line.startswith("    ! ") and said in line for line in text.splitlines()), text


# --- EKS: the ALB's pod readiness gates ---------------------------------------------------


def test_eks_labels_the_namespace_for_the_albs_readiness_gates(repo: Path) -> None:
    cmds = eks_world(namespace_exists=False)
    code, helm, text = deploy(eks(repo), cmds)

    assert code == 0, text
    assert cmds.ran("kubectl", "create", "namespace", "mlkube")
    [label] = cmds.ran("kubectl", "label", "namespace", "mlkube")
    assert "elbv2.k8s.aws/pod-readiness-gate-inject=enabled" in label
    assert "--overwrite" in label
    # Before the release (the step just before it reads the EndpointSlice), so the first
    # serving pods already get the gate.
    assert cmds.index("kubectl", "label", "namespace") < cmds.index(*SLICES.split())
    assert helm.calls


def test_eks_without_an_alb_ingress_leaves_the_namespace_alone(repo: Path, tmp_path: Path) -> None:
    mine = tmp_path / "mine.yaml"
    mine.write_text(yaml.safe_dump({"serving": {"ingress": {"enabled": False}}}))
    cmds = eks_world()
    code, _, text = deploy(eks(repo, mine), cmds)

    assert code == 0, text
    assert not cmds.ran("kubectl", "label", "namespace")
    assert "the Ingress is not the ALB's" in text


# --- Helm waits for the webhook hook as long as the hook may run --------------------------


def test_helm_timeout_outlasts_the_webhook_hook(repo: Path, tmp_path: Path) -> None:
    mine = tmp_path / "mine.yaml"
    mine.write_text(
        yaml.safe_dump({"mlflow": {"backend": {"type": "postgres", "waitSeconds": 600}}})
    )
    code, helm, text = deploy(eks(repo, mine), eks_world())

    assert code == 0, text
    # pull 300 + database 600 + migration 120 + startup 300 + the hook's 120, and a minute.
    assert helm.calls[0][1]["timeout"] == "1500s"
    assert "at most 1500s each" in text
