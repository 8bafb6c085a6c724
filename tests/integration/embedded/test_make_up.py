"""``make up`` end to end: MLflow answers, the alias is set, SIGINT leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from mlkube.core.processes import free_port, port_is_free
from tests.procs import alive, descendants, group_members, naming
from tests.timeouts import HTTP_S, PROCESS_START_S, PROCESS_STOP_S, SLOW_TEST_S

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(SLOW_TEST_S)]


def get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=HTTP_S) as resp:
        return dict(json.loads(resp.read()))


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen[str]) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"make up exited early with {proc.returncode}"
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}")


def up_block_printed(text: str) -> bool:
    """`make up` has printed all of its "Up." block. The "Ctrl-C" line comes first; with the
    model server, the example request is sent and its answer printed after it."""
    if "Model server not started" in text:
        return "Model registry:" in text
    return "It answers:" in text or "(example request failed" in text


def test_make_up_serves_and_stops_cleanly(repo_root: Path, tmp_path: Path) -> None:
    mlflow_port, serve_port = free_port(), free_port()
    log_path = tmp_path / "make-up.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        ["make", "-s", "up", f"MLFLOW_PORT={mlflow_port}", f"SERVE_PORT={serve_port}",
         f"STATE_DIR={tmp_path / 'state'}"],
        cwd=repo_root, stdout=log, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,  # like a terminal: Ctrl-C goes to this group
    )  # fmt: skip
    uri = f"http://127.0.0.1:{mlflow_port}"
    try:
        wait_for(
            lambda: urllib.request.urlopen(uri, timeout=2).status == 200,
            PROCESS_START_S,
            "UI",
            proc,
        )
        alias_url = (
            f"{uri}/api/2.0/mlflow/registered-models/alias?name=iris-classifier&alias=production"
        )
        wait_for(lambda: "model_version" in get_json(alias_url), PROCESS_START_S, "alias", proc)
        assert get_json(alias_url)["model_version"]["version"] == "1"  # type: ignore[index]
        wait_for(lambda: up_block_printed(log_path.read_text()), PROCESS_START_S, "up", proc)
        output = log_path.read_text()
        if "Model server:" in output:  # the serving app answers the printed example
            ready = f"http://127.0.0.1:{serve_port}/healthz/ready"
            assert urllib.request.urlopen(ready, timeout=HTTP_S).status == 200
            assert "It answers:" in output
        children = descendants(proc.pid)
        assert children, "make up started no processes"
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        try:
            proc.wait(timeout=PROCESS_STOP_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
        log.close()
    deadline = time.monotonic() + PROCESS_STOP_S
    while time.monotonic() < deadline and any(alive(p) for p in children):
        time.sleep(0.2)
    survivors = [p for p in children if alive(p)]
    assert not survivors, f"processes survived Ctrl-C: {survivors}"
    assert "Stopped." in (tmp_path / "make-up.log").read_text()
    assert (tmp_path / "state" / "mlflow.db").exists()  # state kept for the next make up


def test_port_in_use_is_reported(repo_root: Path, tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run(
            ["make", "-s", "up", f"MLFLOW_PORT={port}", f"STATE_DIR={tmp_path}"],
            cwd=repo_root, capture_output=True, text=True, timeout=PROCESS_START_S,
        )  # fmt: skip
    assert proc.returncode != 0
    assert f"port {port} for MLflow is already in use" in proc.stderr


def test_a_start_slower_than_up_timeout_is_reported_and_stopped(
    repo_root: Path, tmp_path: Path
) -> None:
    """UP_TIMEOUT bounds each wait; past it, `make up` says how to give it longer and stops
    what it started."""
    port = free_port()
    proc = subprocess.Popen(
        ["make", "-s", "up", "UP_TIMEOUT=1", f"MLFLOW_PORT={port}", f"STATE_DIR={tmp_path}"],
        cwd=repo_root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        _, stderr = proc.communicate(timeout=PROCESS_START_S)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode != 0
    assert "MLflow did not start" in stderr
    assert "make up UP_TIMEOUT=600" in stderr

    # MLflow and the training run in sessions of their own: find them by the state directory
    # and the port they were given, and make's own group by its pid.
    def left() -> list[int]:
        return group_members(proc.pid) + naming(str(tmp_path)) + naming(f":{port}")

    deadline = time.monotonic() + PROCESS_STOP_S
    while left() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left(), "make up left processes behind"
    assert port_is_free(port), f"port {port} is still taken"


@pytest.mark.parametrize("how", ["ctrl-c after the pipe's reader died", "terminal closed"])
def test_a_dead_reader_or_a_closed_terminal_orphans_nothing(
    repo_root: Path, tmp_path: Path, how: str
) -> None:
    """`make up | tee up.log` then Ctrl-C kills tee first: the shutdown's own output must not
    stop it (BrokenPipeError). Closing the terminal sends SIGHUP: the same clean stop."""
    import sys

    mlflow_port, serve_port = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlkube", "up", "--mlflow-port", str(mlflow_port),
         "--serve-port", str(serve_port), "--state-dir", str(tmp_path / "state")],
        cwd=repo_root, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        ready = f"http://127.0.0.1:{serve_port}/healthz/ready"
        wait_for(lambda: urllib.request.urlopen(ready, timeout=2).status == 200,
                 PROCESS_START_S, "the model server", proc)  # type: ignore[arg-type]  # fmt: skip
        children = descendants(proc.pid)
        assert len(children) >= 2, "make up started no MLflow or model server"
        if how.startswith("ctrl-c"):
            proc.stdout.close()  # tee is gone: every later print hits a broken pipe
            os.killpg(proc.pid, signal.SIGINT)
        else:
            os.killpg(proc.pid, signal.SIGHUP)
        proc.wait(timeout=PROCESS_STOP_S)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    deadline = time.monotonic() + PROCESS_STOP_S
    while time.monotonic() < deadline and any(alive(p) for p in children):
        time.sleep(0.2)
    survivors = [p for p in children if alive(p)]
    assert not survivors, f"processes outlived make up ({how}): {survivors}"
    for port in (mlflow_port, serve_port):
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))  # the ports are free again
