"""The bits of shell in the GitHub workflows doing what they say, run by bash."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.unit.workflows.test_workflows import REPO, load, steps


def which_run_script() -> str:
    workflow = load(REPO / ".github" / "workflows" / "promote.yml")
    [step] = [s for s in steps(workflow) if s.get("id") == "run"]
    return str(step["run"])


RUN = "0123456789abcdef0123456789abcdef"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize(
    ("run_id", "body", "code", "output"),
    [
        ("", f"Better features.\r\n\r\nmlflow-run: {RUN}\r\n", 0, f"run_id={RUN}"),
        ("", f"  mlflow-run:{RUN}  \nmlflow-run: {'f' * 32}", 0, f"run_id={RUN}"),
        ("", "A refactoring, no model.", 0, "run_id="),
        ("", "mlflow-run: not-a-run; rm -rf /", 2, ""),
        (RUN, "", 0, f"run_id={RUN}"),
        ("0123", "", 2, ""),
    ],
)
def test_promote_finds_the_run_id(
    tmp_path: Path, run_id: str, body: str, code: int, output: str
) -> None:
    out, summary = tmp_path / "out", tmp_path / "summary"
    env = {
        "PATH": os.environ["PATH"],
        "INPUT_RUN_ID": run_id,
        "PR_BODY": body,
        "GITHUB_OUTPUT": str(out),
        "GITHUB_STEP_SUMMARY": str(summary),
    }
    result = subprocess.run(
        ["bash", "-e", "-c", which_run_script()],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == code, result.stdout + result.stderr
    written = out.read_text().strip() if out.exists() else ""
    assert written == output
    if output == "run_id=":
        assert "names no 'mlflow-run: <id>' line" in summary.read_text()
