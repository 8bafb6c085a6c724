"""The command line: its validation, the plan it runs, ``check-tag``, and where it finds the
tools."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from deploy import cli
from tests.unit.deploy.fakes import ALL_TOOLS, FakeCommands, FakeHelm, ok


def test_eks_needs_a_registry(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["deploy", "--env", "eks", "--repo", str(repo)], cmds=FakeCommands())
    assert exc.value.code == 2
    assert "--registry (IMAGE_REGISTRY) is required with --env eks" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["deploy", "--namespace", "Bad_NS"], "--namespace 'Bad_NS': lower-case letters"),
        (["deploy", "--values", "/nope.yaml"], "--values /nope.yaml: no such file"),
        (["ui", "--port", "70000"], "--port '70000': a number from 1 to 65535"),
        (["train", "--timeout", "0"], "--timeout '0': a positive number"),
        (["deploy", "--env", "gke"], "argument --env: invalid choice: 'gke'"),
        (["images", "--platform", "linux/arm64"], "--platform (PLATFORM) builds with buildx"),
    ],
)
def test_bad_flags_are_named(
    repo: Path, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main([*argv, "--repo", str(repo)], cmds=FakeCommands())
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_main_runs_the_planned_steps(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cmds = FakeCommands().on("kind", "get", "clusters", answer=ok("mlkube\n"))
    code = cli.main(
        ["destroy", "--repo", str(repo), "--cluster", "mlkube"],
        cmds=cmds,
        helm=FakeHelm(),
        tools=ALL_TOOLS,
    )
    assert code == 0, capsys.readouterr().out
    assert cmds.ran("kind", "delete", "cluster") == [
        ["kind", "delete", "cluster", "--name", "mlkube"]
    ]


def test_check_tag(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check-tag", "--tag", "v0.1.0", "--repo", str(repo)]) == 0
    assert "matches the chart's appVersion 0.1.0" in capsys.readouterr().out
    assert cli.main(["check-tag", "--tag", "v0.2.0", "--repo", str(repo)]) == 1
    assert "tag 'v0.2.0' does not match the chart's appVersion '0.1.0'" in capsys.readouterr().err


def test_find_tools_prefers_the_users_own(tmp_path: Path) -> None:
    repo, user = tmp_path / "repo", tmp_path / "user"
    (repo / "bin").mkdir(parents=True)
    user.mkdir()
    for path in (repo / "bin" / "helm", repo / "bin" / "kubectl", user / "kubectl"):
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
    # The Makefile puts ./bin first on PATH; the user's kubectl still wins.
    found = cli.find_tools(repo, path=os.pathsep.join([str(repo / "bin"), str(user)]))
    assert found["kubectl"] == str(user / "kubectl")
    assert found["helm"] == str(repo / "bin" / "helm")  # the fallback
    assert found["kind"] is None
