"""The real subprocess runner and the step runner's verdicts."""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

import pytest

from deploy.options import Options
from deploy.runner import Step, run_steps
from deploy.shell import CommandError, StepFailed, SubprocessCommands, show
from mlkube.core.console import Console
from tests.unit.deploy.fakes import FakeCommands, make_ctx


def test_run_captures_and_raises_with_the_tail_of_stderr(tmp_path: Path) -> None:
    cmds = SubprocessCommands(log_dir=tmp_path)
    script = "import sys; print('out'); print('line1\\nline2', file=sys.stderr); sys.exit(3)"
    result = cmds.run([sys.executable, "-c", script], check=False)
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "line1\nline2\n")
    with pytest.raises(CommandError, match=r"exited with 3:\nline1\nline2$") as exc:
        cmds.run([sys.executable, "-c", script])
    assert exc.value.result.returncode == 3


def test_run_passes_env_and_input(tmp_path: Path) -> None:
    cmds = SubprocessCommands(log_dir=tmp_path)
    script = "import os, sys; print(os.environ['MLKUBE_X'] + sys.stdin.read())"
    result = cmds.run([sys.executable, "-c", script], env={"MLKUBE_X": "a"}, input="b")
    assert result.stdout == "ab\n"


def test_missing_program_and_timeout_are_results_not_crashes(tmp_path: Path) -> None:
    cmds = SubprocessCommands(log_dir=tmp_path)
    missing = cmds.run(["/nonexistent/kind", "version"], check=False)
    assert missing.returncode == 127
    assert "not found" in missing.stderr
    slow = cmds.run([sys.executable, "-c", "import time; time.sleep(5)"], check=False, timeout=0.5)
    assert slow.returncode == 124
    assert "timed out" in slow.stderr


def test_spawn_logs_and_stop_ends_it(tmp_path: Path) -> None:
    cmds = SubprocessCommands(log_dir=tmp_path)
    proc = cmds.spawn(
        [sys.executable, "-u", "-c", "import time; print('Forwarding', flush=True); time.sleep(60)"]
    )
    deadline = time.monotonic() + 10
    while "Forwarding" not in proc.output() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "Forwarding" in proc.output()
    assert proc.poll() is None
    proc.stop()
    assert proc.poll() is not None


def test_show_uses_the_programs_base_name() -> None:
    assert show(["/repo/bin/helm", "status", "a b"]) == "helm status 'a b'"


def test_run_steps_stops_at_the_first_failure_and_calls_the_hook(tmp_path: Path) -> None:
    ran: list[str] = []
    hooked: list[str] = []

    def ok_step(ctx: object) -> None:
        ran.append("one")

    def bad_step(ctx: object) -> None:
        ran.append("two")
        raise StepFailed("the thing broke", look="kubectl get thing")

    def never(ctx: object) -> None:
        ran.append("three")

    steps = [Step("one", "One", ok_step), Step("two", "Two", bad_step, "ignored {ns}"),
             Step("three", "Three", never)]  # fmt: skip
    ctx, out, _ = make_ctx(Options(repo=tmp_path), FakeCommands())

    assert run_steps(steps, ctx, on_failure=lambda c, step: hooked.append(step.key)) == 1

    assert ran == ["one", "two"]
    assert hooked == ["two"]
    text = out.getvalue()
    assert "==> [1/3] One\n    ok (" in text
    assert "FAILED: Two\n  the thing broke\nLook with:\n  kubectl get thing" in text


def test_console_indents_details() -> None:
    out = io.StringIO()
    console = Console(out)
    console.header(2, 5, "Building images")
    console.info("built a\nbuilt b")
    assert out.getvalue() == "==> [2/5] Building images\n    built a\n    built b\n"
