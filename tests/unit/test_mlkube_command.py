"""The ``mlkube`` command (mlkube/__main__.py): each command reaches its component with the
command line as typed, and the Makefile's targets for what a person runs call it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import deploy.cli
import embedded.up
import jobs.train
from mlkube import __main__ as command

REPO = Path(__file__).resolve().parents[2]
Calls = list[tuple[str, list[str]]]


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    seen: Calls = []
    for name, module in (("deploy", deploy.cli), ("embedded", embedded.up), ("jobs", jobs.train)):

        def main(argv: list[str], name: str = name) -> int:
            seen.append((name, argv))
            return 7

        monkeypatch.setattr(module, "main", main)
    return seen


@pytest.mark.parametrize("name", command.DEPLOY_COMMANDS)
def test_the_deploy_drivers_commands_go_to_it_whole(name: str, calls: Calls) -> None:
    assert command.main([name, "--env", "local", "--namespace", "x"]) == 7
    assert calls == [("deploy", [name, "--env", "local", "--namespace", "x"])]


def test_up_goes_to_the_local_runner(calls: Calls) -> None:
    assert command.main(["up", "--mlflow-port", "5001"]) == 7
    assert calls == [("embedded", ["up", "--mlflow-port", "5001"])]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["train", "--trigger", "manual"], ("jobs", ["--trigger", "manual"])),
        (["train"], ("jobs", [])),
        (["train", "--env", "kind", "--cluster", "c"], ("deploy", ["train", "--env", "kind",
                                                                   "--cluster", "c"])),
        (["train", "--env=eks"], ("deploy", ["train", "--env=eks"])),
    ],
)  # fmt: skip
def test_train_runs_here_unless_an_env_names_a_cluster(
    argv: list[str], expected: tuple[str, list[str]], calls: Calls
) -> None:
    assert command.main(argv) == 7
    assert calls == [expected]


def test_help_and_unknown_commands(calls: Calls, capsys: pytest.CaptureFixture[str]) -> None:
    assert command.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("up", "train", *command.DEPLOY_COMMANDS):
        assert re.search(rf"^  {name}\s", out, re.M), f"mlkube --help does not list {name}"
    assert command.main([]) == 2
    assert "usage: mlkube COMMAND" in capsys.readouterr().err
    assert command.main(["deplyo"]) == 2
    assert "unknown command 'deplyo'" in capsys.readouterr().err
    assert calls == []


def recipes(makefile: str) -> dict[str, str]:
    """Target -> its recipe (the tab-indented lines after it)."""
    found: dict[str, str] = {}
    for match in re.finditer(r"^([a-z0-9-]+):[^\n]*\n((?:(?:\t|ifeq|else|endif)[^\n]*\n)*)",
                             makefile, re.M):  # fmt: skip
        found[match[1]] = match[2]
    return found


@pytest.mark.parametrize(
    "target", ["up", "deploy", "destroy", "status", "ui", "predict", "train", "e2e", "images"]
)
def test_the_make_targets_call_the_mlkube_command(target: str) -> None:
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^MLKUBE := \$\(VENV\)/bin/mlkube$", makefile, re.M)
    recipe = recipes(makefile)[target]
    lines = [line.strip() for line in recipe.splitlines() if line.startswith("\t")]
    assert lines, f"make {target} has no recipe"
    runs = [line for line in lines if "$(MLKUBE) " in line]
    assert runs, f"make {target} does not call the mlkube command: {lines}"
    assert all(f"$(MLKUBE) {target}" in line for line in runs), runs
