"""`make status` shows the operator's rollout record of the serving Deployment, hold included."""

from __future__ import annotations

from pathlib import Path

from deploy.helm import Revision
from deploy.operations import show_status
from deploy.options import Options
from tests.unit.deploy.fakes import FakeCommands, FakeHelm, deployment, kjson, make_ctx


def test_status_shows_the_rollout_record_and_the_hold(repo: Path) -> None:
    serving = deployment("mlkube-serving", version="1", labels={"mlkube.io/model-name": "m"})
    serving["metadata"]["annotations"] = {
        "mlkube.io/rollout-status": "failed",
        "mlkube.io/rollout-target": "3",
        "mlkube.io/stable-model-version": "1",
        "mlkube.io/rollout-started": "2026-03-01T12:00:00Z",
        "mlkube.io/rollout-reason": "version 3 failed: UnpicklingError",
        "mlkube.io/rollout-hold": "incident 42",
    }
    cmds = FakeCommands().on("kubectl get deployment", answer=kjson(serving))
    cmds.on("kubectl get ingress", answer=kjson())
    helm = FakeHelm(installed=Revision("mlkube", "mlkube", 3, "deployed"))
    ctx, out, _ = make_ctx(Options(repo=repo), cmds, helm)
    show_status(ctx)
    text = out.getvalue()
    assert (
        "rollout: HELD by mlkube.io/rollout-hold='incident 42'; last record: failed: target 3, "
        "stable 1, since 2026-03-01T12:00:00Z (version 3 failed: UnpicklingError)"
    ) in text


def test_status_without_a_record_says_so(repo: Path) -> None:
    serving = deployment("mlkube-serving", labels={"mlkube.io/model-name": "m"})
    cmds = FakeCommands().on("kubectl get deployment", answer=kjson(serving))
    cmds.on("kubectl get ingress", answer=kjson())
    helm = FakeHelm(installed=Revision("mlkube", "mlkube", 3, "deployed"))
    ctx, out, _ = make_ctx(Options(repo=repo), cmds, helm)
    show_status(ctx)
    assert "rollout: no rollout record (the operator has not managed this" in out.getvalue()
