"""The ways in keep working after the move: the `mlkube` console command, `python -m mlkube`,
`python -m deploy`, and the old `python -m mlkube.deploy`, which forwards with a one-line
deprecation note on stderr."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
MLKUBE = Path(sys.executable).parent / "mlkube"  # the console script of `make venv`
MATCHES = "tag v0.1.0 matches the chart's appVersion 0.1.0\n"


def run(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize(
    "argv",
    [[MLKUBE], [sys.executable, "-m", "mlkube"], [sys.executable, "-m", "deploy"]],
    ids=["mlkube", "python -m mlkube", "python -m deploy"],
)
def test_the_deploy_driver_answers_by_each_name(argv: list[str | Path]) -> None:
    out = run(*argv, "check-tag", "--tag", "v0.1.0")
    assert (out.returncode, out.stdout, out.stderr) == (0, MATCHES, "")


def test_the_old_name_forwards_with_one_line_on_stderr() -> None:
    out = run(sys.executable, "-m", "mlkube.deploy", "check-tag", "--tag", "v0.1.0")
    assert (out.returncode, out.stdout) == (0, MATCHES)
    note = out.stderr.splitlines()
    assert len(note) == 1, out.stderr
    assert "deprecated" in note[0]
    assert "mlkube <command>" in note[0]
    failed = run(sys.executable, "-m", "mlkube.deploy", "check-tag", "--tag", "v9.9.9")
    assert failed.returncode == 1
    assert "does not match the chart's appVersion" in failed.stderr


@pytest.mark.parametrize(
    "argv", [[MLKUBE, "up", "--help"], [sys.executable, "-m", "mlkube", "up", "--help"]]
)
def test_up_answers_by_both_names(argv: list[str | Path]) -> None:
    out = run(*argv)
    assert out.returncode == 0, out.stderr
    assert "usage: mlkube up" in out.stdout
    assert "--mlflow-port" in out.stdout
