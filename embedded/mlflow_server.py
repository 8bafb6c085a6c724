"""Run a real MLflow tracking server as a child process: used by ``make up`` and the tests.

``mlflow server`` is two Pythons in a row: its CLI imports all of MLflow's server (4 s of CPU on
2 cores here, 10 s without bytecode files) to create the sqlite tables, then starts uvicorn, which
imports it all again. :func:`serve` is that uvicorn worker run directly: the same app, environment
and worker count, the tables created by the same MLflow call, one import (``python -m bench.up``
measures both)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import TracebackType

from mlkube.core.backoff import Unreachable
from mlkube.core.processes import port_is_free, stop_process_group
from mlkube.core.tracking import check_health

# What ``mlflow server`` hands its uvicorn worker (mlflow.server._run_server; the names are in
# mlflow.server.constants and mlflow.environment_variables, which a unit test compares).
DEFAULT_ARTIFACT_ROOT = "mlflow-artifacts:/"  # --serve-artifacts without --default-artifact-root
APP = "mlflow.server.fastapi_app:app"  # the app `mlflow server` runs on uvicorn


def server_environment(backend_uri: str, artifacts: Path) -> dict[str, str]:
    return {
        "_MLFLOW_SERVER_FILE_STORE": backend_uri,
        "_MLFLOW_SERVER_REGISTRY_STORE": backend_uri,
        "_MLFLOW_SERVER_ARTIFACT_ROOT": DEFAULT_ARTIFACT_ROOT,
        "_MLFLOW_SERVER_SERVE_ARTIFACTS": "true",
        "_MLFLOW_SERVER_ARTIFACT_DESTINATION": str(artifacts),
        "_MLFLOW_SERVER_BOOT_ID": uuid.uuid4().hex,
        "_MLFLOW_IN_JOB_EXECUTOR": "false",
        "_MLFLOW_SGI_NAME": "uvicorn",
        "MLFLOW_ENABLE_WORKSPACES": "false",
    }


def serve(backend_uri: str, artifacts: Path, host: str, port: int) -> None:
    """The MLflow server in this process, one uvicorn worker (sqlite takes one writer)."""
    # Before MLflow is imported, as its CLI sets it before its worker starts: mlflow.server reads
    # some of it at import time (with it, the Flask app gets MLflow's security middleware).
    os.environ.update(server_environment(backend_uri, artifacts))
    import mlflow.server
    import uvicorn
    from mlflow.server.handlers import initialize_backend_stores

    # Creates the tables of a new database (MLflow's migrations) and checks an existing one's
    # schema, as `mlflow server` does; the request handlers then use these very stores.
    initialize_backend_stores(backend_uri, backend_uri, DEFAULT_ARTIFACT_ROOT)
    log_config = Path(mlflow.server.__file__).parent / "uvicorn_log_config.yaml"
    uvicorn.run(
        APP,
        host=host,
        port=port,
        workers=1,
        log_config=str(log_config) if log_config.exists() else None,
    )


class MlflowServer:
    """MLflow on sqlite + proxied local artifacts under ``state_dir``, one uvicorn worker.

    ``single_process`` (the default) runs it as :func:`serve`; False runs ``mlflow server``
    itself, as does an ``extra_env`` that turns MLflow's job runner on (only its CLI starts one).
    Use as a context manager; ``uri`` is the tracking URI once started."""

    def __init__(
        self,
        state_dir: Path,
        port: int,
        host: str = "127.0.0.1",
        log_file: Path | None = None,
        extra_env: dict[str, str] | None = None,
        single_process: bool = True,
    ) -> None:
        self.state_dir = state_dir
        self.port = port
        self.host = host
        self.log_file = log_file or state_dir / "mlflow-server.log"
        self.extra_env = extra_env or {}
        self.single_process = single_process
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"http://{self.host}:{self.port}"

    def job_runner_on(self) -> bool:
        flag = self.extra_env.get("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
        return flag.strip().lower() in ("true", "1")

    def command(self) -> list[str]:
        db = (self.state_dir / "mlflow.db").resolve()
        artifacts = (self.state_dir / "artifacts").resolve()
        if self.single_process and not self.job_runner_on():
            return [
                sys.executable,
                "-m",
                "embedded.mlflow_server",
                "--backend-store-uri",
                f"sqlite:///{db}",
                "--artifacts-destination",
                str(artifacts),
                "--host",
                self.host,
                "--port",
                str(self.port),
            ]
        return [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--backend-store-uri",
            f"sqlite:///{db}",
            "--serve-artifacts",
            "--artifacts-destination",
            str(artifacts),
            "--workers",
            "1",
        ]

    def start(self, timeout: float = 180.0) -> str:
        self.launch()
        self.wait_ready(timeout)
        return self.uri

    def launch(self) -> None:
        """Start the process and return at once; :meth:`wait_ready` waits for its answer."""
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

    def wait_ready(self, timeout: float) -> None:
        """Until /health answers 200; raises Unreachable (and stops the server) after
        ``timeout`` seconds, or at once when the process exits."""
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


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m embedded.mlflow_server", description=serve.__doc__)
    p.add_argument("--backend-store-uri", required=True)
    p.add_argument("--artifacts-destination", type=Path, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5000)
    args = p.parse_args(argv)
    serve(args.backend_store_uri, args.artifacts_destination, args.host, args.port)


if __name__ == "__main__":
    main()
