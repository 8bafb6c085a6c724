"""Run a real ``mlflow server`` as a child process: used by ``make up`` and the test fixture."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from mlkube.core.backoff import Unreachable
from mlkube.core.tracking import check_health


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when a server could listen on the port now. SO_REUSEADDR, as servers set it, so a
    just-stopped server's TIME_WAIT connections do not count as "in use"."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def stop_process_group(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM the child's whole process group (MLflow and uvicorn fork workers), then SIGKILL
    whatever is left after ``grace`` seconds, so nothing outlives us."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    try:  # workers may linger after the leader exited
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if proc.poll() is None:
        proc.wait(timeout=5)


class MlflowServer:
    """``mlflow server`` on sqlite + proxied local artifacts under ``state_dir``.

    Use as a context manager; ``uri`` is the tracking URI once started."""

    def __init__(
        self,
        state_dir: Path,
        port: int,
        host: str = "127.0.0.1",
        log_file: Path | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.port = port
        self.host = host
        self.log_file = log_file or state_dir / "mlflow-server.log"
        self.extra_env = extra_env or {}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        db = (self.state_dir / "mlflow.db").resolve()
        artifacts = (self.state_dir / "artifacts").resolve()
        return [
            sys.executable, "-m", "mlflow", "server",
            "--host", self.host,
            "--port", str(self.port),
            "--backend-store-uri", f"sqlite:///{db}",
            "--serve-artifacts",
            "--artifacts-destination", str(artifacts),
            "--workers", "1",
        ]  # fmt: skip

    def start(self, timeout: float = 180.0) -> str:
        if not port_is_free(self.port, self.host):
            raise OSError(
                f"port {self.port} on {self.host} is already in use: stop what runs there "
                "or choose another port"
            )
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "artifacts").mkdir(exist_ok=True)
        log = self.log_file.open("ab")
        # No job runner: it starts seven huey consumers (~230 MB each) that no mlkube feature
        # uses, and slows the start. A caller's extra_env may still turn it on.
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **self.extra_env}
        self.proc = subprocess.Popen(
            self.command(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        log.close()
        self._wait_ready(timeout)
        return self.uri

    def _wait_ready(self, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Unreachable(
                    f"mlflow server exited with code {self.proc.returncode} before answering; "
                    f"see {self.log_file}"
                )
            try:
                check_health(self.uri, timeout=1.0)
                return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise Unreachable(
            f"mlflow server did not answer on {self.uri} within {timeout:.0f}s; see {self.log_file}"
        )

    def stop(self) -> None:
        if self.proc is not None:
            stop_process_group(self.proc)
            self.proc = None

    def __enter__(self) -> MlflowServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
