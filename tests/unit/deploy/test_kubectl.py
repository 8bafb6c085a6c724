"""The Ctx-free kubectl layer that the deploy, the cluster tests and bench-cluster share: its
commands, "does the cluster answer", the port-forward's wait, and the load pod."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from deploy.e2e.podload import LoadPod
from deploy.kubectl import Kubectl, cluster_answers
from tests.unit.deploy.fakes import FakeCommands, fail, ok, option


def test_every_command_names_the_kubeconfig_and_context_it_was_given() -> None:
    cmds = FakeCommands()
    Kubectl(cmds, "/k/kubectl", kubeconfig=Path("/s/kubeconfig"), context="c").run("get", "ns")
    Kubectl(cmds, "/k/kubectl").run("get", "ns")
    cmds.on("kubectl get pods", answer=ok('{"items": [{"a": 1}]}'))
    assert Kubectl(cmds, "/k/kubectl").json("get", "pods") == {"items": [{"a": 1}]}
    # (the fake takes --context out of what it records, and keeps it apart)
    assert cmds.calls[:2] == [["kubectl", "--kubeconfig=/s/kubeconfig", "get", "ns"]] + [
        ["kubectl", "get", "ns"]
    ]
    assert cmds.contexts[:2] == ["c", None]
    assert cmds.calls[2] == ["kubectl", "get", "pods", "-o", "json"]


def test_a_cluster_answers_when_its_kubeconfig_is_there_and_its_api_is_ready(
    tmp_path: Path,
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    cmds = FakeCommands().on("kubectl get --raw /readyz", answer=[fail("refused"), ok("ok")])
    kube = Kubectl(cmds, "kubectl")  # the deploy's: $KUBECONFIG names the file
    assert not cluster_answers(kube, kubeconfig)
    assert not cmds.calls  # no kubeconfig: nothing to ask
    kubeconfig.write_text("apiVersion: v1\n")
    assert not cluster_answers(kube, kubeconfig)
    assert cluster_answers(kube, kubeconfig)


@dataclass
class Forwarding:
    """A port-forward that says it listens after ``after`` looks at its output, or exits."""

    after: int = 2
    exits: bool = False
    looked: int = 0
    stopped: bool = False

    def poll(self) -> int | None:
        return 1 if self.exits else None

    def stop(self) -> None:
        self.stopped = True

    def output(self) -> str:
        self.looked += 1
        if self.exits:
            return "error: unable to forward port: pod not found"
        return "Forwarding from 127.0.0.1:4321 -> 5000\n" if self.looked > self.after else ""


@dataclass
class Spawns(FakeCommands):
    procs: list[Forwarding] = field(default_factory=list)
    argvs: list[Sequence[str]] = field(default_factory=list)

    def spawn(self, argv: Sequence[str], **_: object) -> Forwarding:  # type: ignore[override]
        self.argvs.append(argv)
        return self.procs.pop(0)


def test_forwarding_waits_until_kubectl_listens_and_stops_it_after() -> None:
    proc = Forwarding(after=1)
    cmds = Spawns(procs=[proc])
    kube = Kubectl(cmds, "kubectl", context="c")
    with kube.forwarding("ns", "svc/mlflow", 5000) as forward:
        assert proc.looked == 2
        assert not proc.stopped
        assert forward.url == f"http://127.0.0.1:{forward.port}"
    assert proc.stopped
    [argv] = cmds.argvs
    assert argv[:4] == ["kubectl", "--context", "c", "port-forward"]
    assert option(argv, "-n") == "ns"
    assert argv[-2:] == ["svc/mlflow", f"{forward.port}:5000"]


def test_a_port_forward_that_exits_is_a_refused_connection() -> None:
    proc = Forwarding(exits=True)
    with (
        pytest.raises(ConnectionError, match="pod/x did not start: error: unable to forward"),
        Kubectl(Spawns(procs=[proc]), "kubectl").forwarding("ns", "pod/x", 8080),
    ):
        pass
    assert proc.stopped


def test_the_load_pod_under_another_name_and_pull_policy() -> None:
    cmds = FakeCommands().on(
        "kubectl logs -n t load-1", answer=[ok("starting\n"), ok('{"sent": 3}')]
    )
    pod = LoadPod(Kubectl(cmds, "kubectl"), "t", "load-1")
    pod.create("serve:1", "http://svc/invocations", 90.5, pull="Never", label="test-load")
    pod.wait_ready()
    pod.stop()
    assert pod.report() is None
    assert pod.report() == {"sent": 3}
    pod.delete()
    run, wait, stop, _, _, delete = cmds.calls
    assert run[:3] == ["kubectl", "run", "load-1"]
    assert "--image-pull-policy=Never" in run
    assert "--labels=app.kubernetes.io/name=test-load" in run
    assert run[-3:-1] == ["http://svc/invocations", "90"]
    assert wait[:5] == ["kubectl", "wait", "-n", "t", "pod/load-1"]
    assert stop == ["kubectl", "exec", "-n", "t", "load-1", "--", "touch", "/tmp/stop"]
    assert delete == ["kubectl", "delete", "pod", "load-1", "-n", "t", "--wait=false"]
