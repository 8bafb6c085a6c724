"""No component phones home: MLflow's usage telemetry is off unless the user turns it on."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize("package", ["jobs.train", "service", "rollout", "embedded.up"])
def test_importing_a_component_turns_mlflow_telemetry_off(package: str) -> None:
    # Without the markers MLflow takes as "CI or testing", so the check is the default's alone.
    drop = {"MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK", "CI", "PYTEST_CURRENT_TEST",
            "GITHUB_ACTIONS"}  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in drop}
    code = (
        f"import {package}\n"
        "from mlflow.telemetry.utils import is_telemetry_disabled\n"
        "print(is_telemetry_disabled())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "True"


def test_the_user_can_turn_it_back_on() -> None:
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "false"}
    out = subprocess.run(
        [sys.executable, "-c", "import mlkube, os; print(os.environ['MLFLOW_DISABLE_TELEMETRY'])"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.stdout.strip() == "false"
