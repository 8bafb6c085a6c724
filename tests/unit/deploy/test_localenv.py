"""The deploy driver's reader of `hack/cluster/cluster.py env --json`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deploy.localenv import LocalCluster, read_local_cluster
from deploy.shell import StepFailed
from tests.unit.deploy.fakes import FakeCommands, fail, ok

WHERE = {"kubeconfig": "/s/kubeconfig", "context": "mlkube-local", "logs": "/s/logs",
         "cache": "/c/v1.35.4", "state": "/s"}  # fmt: skip
SCRIPT = Path("/repo/hack/cluster/cluster.py")


def test_it_asks_cluster_py_env_json() -> None:
    cmds = FakeCommands().on("py", str(SCRIPT), "env", "--json", answer=ok(json.dumps(WHERE)))

    local = read_local_cluster(cmds, SCRIPT, "/py")

    assert local.kubeconfig == Path("/s/kubeconfig")
    assert (local.context, local.logs, local.cache) == (
        "mlkube-local",
        Path("/s/logs"),
        Path("/c/v1.35.4"),
    )
    assert cmds.calls == [["py", str(SCRIPT), "env", "--json"]]  # the tool by its base name


def test_a_failed_or_partial_answer_is_a_step_failure() -> None:
    failing = FakeCommands().on("py", answer=fail("no versions.env"))
    with pytest.raises(StepFailed, match="no versions.env"):
        read_local_cluster(failing, SCRIPT, "/py")
    partial = FakeCommands().on("py", answer=ok(json.dumps({"kubeconfig": "/k"})))
    with pytest.raises(StepFailed, match="lacks context, logs, cache, state"):
        read_local_cluster(partial, SCRIPT, "/py")
    with pytest.raises(ValueError, match="no JSON"):
        LocalCluster.from_json("usage: cluster.py ...")
