"""A model registered by the real training job, and the real server (``python -m service`` on
uvicorn) on a free loopback port."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from mlkube.core.processes import free_port, stop_process_group
from tests.conftest import subprocess_env
from tests.timeouts import EVENTUAL_S, HTTP_S, PROCESS_START_S

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@dataclass(frozen=True)
class RegisteredModel:
    tracking_uri: str
    name: str
    version: str


def train(tracking_uri: str, name: str, *extra: str) -> str:
    """One run of the training job (``python -m jobs.train``, in-process); returns the version
    the ``production`` alias points to afterwards."""
    from mlflow import MlflowClient

    from jobs.train import main

    code = main(["--tracking-uri", tracking_uri, "--model-name", name, "--seed", "1",
                 "--trigger", "manual", *extra])  # fmt: skip
    assert code == 0, f"the training job exited with {code}"
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    return str(client.get_model_version_by_alias(name, "production").version)


@pytest.fixture(scope="session")
def registered_model(tracking_uri: str) -> RegisteredModel:
    name = f"serve-iris-{uuid.uuid4().hex[:6]}"
    return RegisteredModel(tracking_uri, name, train(tracking_uri, name))


class ServiceProcess:
    """``python -m service`` as a child process; its log is kept in ``log_path``."""

    def __init__(self, log_path: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env = subprocess_env(
            SERVE_HOST="127.0.0.1", SERVE_PORT=str(self.port), LOG_LEVEL="info",
            PYTHONHASHSEED="0",  # MLflow's messages print sets: same order as the parity server
            **env,
        )  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "service"], env=self.env, stdout=log,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        return self

    def wait(
        self, path: str, status: int = 200, timeout: float = PROCESS_START_S
    ) -> httpx.Response:
        """Poll ``path`` until it answers ``status``; fail with the log's tail otherwise."""
        deadline = time.monotonic() + timeout
        last: httpx.Response | None = None
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                pytest.fail(f"the service exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                last = httpx.get(self.url + path, timeout=HTTP_S)
                if last.status_code == status:
                    return last
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        pytest.fail(f"{path} never answered {status} (last: {last}):\n{self.log_tail()}")

    def eventually(
        self, condition: Callable[[], object], what: str, timeout: float = EVENTUAL_S
    ) -> None:
        """Poll ``condition`` until it is truthy; fail with the log's tail after ``timeout``."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                pytest.fail(f"not within {timeout:.0f}s: {what}\n{self.log_tail()}")
            time.sleep(0.1)

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc is not None:
            stop_process_group(self.proc)
            self.proc = None

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


@pytest.fixture(scope="session")
def served(
    registered_model: RegisteredModel, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """The service following the alias of the registered model, default limits, batching on."""
    with ServiceProcess(
        tmp_path_factory.mktemp("served") / "service.log",
        MLFLOW_TRACKING_URI=registered_model.tracking_uri,
        MODEL_NAME=registered_model.name,
    ) as service:
        service.wait("/healthz/ready")
        yield service


@pytest.fixture
def client(served: ServiceProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=HTTP_S) as c:
        yield c
