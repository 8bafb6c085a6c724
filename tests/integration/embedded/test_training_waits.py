"""`make up` starts the training with MLflow, so its imports overlap MLflow's start; the run
itself waits until make up says MLflow answers, and never runs when MLflow did not start."""

from __future__ import annotations

import argparse

import pytest

from embedded.mlflow_server import MlflowServer
from embedded.up import finish_training, start_training
from mlkube.core.processes import free_port
from tests.timeouts import PROCESS_START_S

pytestmark = pytest.mark.integration


def test_a_released_training_runs_and_its_output_is_passed_on(
    mlflow_server: MlflowServer, model_name: str, capfd: pytest.CaptureFixture[str]
) -> None:
    proc = start_training(argparse.Namespace(model_name=model_name), mlflow_server.uri)
    assert finish_training(proc) == 0
    out = capfd.readouterr().out
    assert f"{model_name} v1 PROMOTED" in out


def test_a_training_never_released_exits_without_a_run(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """MLflow did not start: make up stops the waiting training (or dies, closing its pipe)."""
    proc = start_training(argparse.Namespace(model_name="never"), f"http://127.0.0.1:{free_port()}")
    assert proc.stdin is not None
    assert proc.stdout is not None
    proc.stdin.close()  # no go
    assert proc.wait(timeout=PROCESS_START_S) == 1
    assert b"never" not in proc.stdout.read()  # no run started, no MLflow waited for
