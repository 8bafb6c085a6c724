"""Rollouts behind an ALB (IP targets) lose no request: a stopping pod keeps serving until the
target group has drained it, and new pods wait for the ALB's health check (the readiness gate,
turned on by the namespace label the deploy sets)."""

from __future__ import annotations

import pytest

from tests.charts.manifests import Rendered, name

pytestmark = pytest.mark.charts

# What the AWS Load Balancer Controller and the ALB need after the pod starts terminating,
# before every ALB node has stopped sending it new requests.
DEREGISTRATION_LAG_S = 10


def _alb(rendered: Rendered) -> bool:
    ingress = rendered.values["serving"]["ingress"]
    return bool(rendered.values["serving"]["enabled"] and ingress["enabled"]) and (
        ingress["className"] == "alb"
    )


def test_alb_rollouts_outlast_the_target_groups_draining(rendered: Rendered) -> None:
    if not _alb(rendered):
        assert rendered.name != "eks"
        return
    annotations = rendered.get("Ingress", name("serving"))["metadata"]["annotations"]
    assert annotations["alb.ingress.kubernetes.io/target-type"] == "ip"  # readiness gates need it
    assert annotations["alb.ingress.kubernetes.io/healthcheck-path"] == "/healthz/ready"
    attributes = dict(
        a.split("=", 1)
        for a in annotations["alb.ingress.kubernetes.io/target-group-attributes"].split(",")
    )
    drain = int(attributes["deregistration_delay.timeout_seconds"])
    assert drain <= 60  # not ALB's 300 s default
    pod = rendered.get("Deployment", name("serving"))["spec"]["template"]["spec"]
    (serve,) = pod["containers"]
    sleep = serve["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert sleep >= drain + DEREGISTRATION_LAG_S
    assert pod["terminationGracePeriodSeconds"] >= sleep + 30  # then uvicorn's graceful stop
