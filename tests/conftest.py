"""Fixtures shared by every test layer.

``mlflow_server`` is a real MLflow server (MLflow's app on uvicorn, started as ``make up`` starts
it: ``embedded.mlflow_server``) on a free loopback port (sqlite backend, proxied artifacts),
started once per test session. Tests that need isolation use their own
registered-model name (``model_name`` fixture) instead of their own server.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from embedded.mlflow_server import MlflowServer
from mlkube.core.processes import free_port

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    state = tmp_path_factory.mktemp("mlflow")
    # Webhooks to a loopback http:// URL (the rollout operator's tests): MLflow refuses private
    # IPs and http:// by default, and caches each event's webhook list for 60 s.
    webhooks = {
        "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
        "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
        "MLFLOW_WEBHOOK_CACHE_TTL": "1",
    }
    server = MlflowServer(state_dir=state, port=free_port(), extra_env=webhooks)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def tracking_uri(mlflow_server: MlflowServer) -> str:
    return mlflow_server.uri


@pytest.fixture
def mlflow_env(tracking_uri: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Points the in-process MLflow client at the test server."""
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    mlflow.set_tracking_uri(tracking_uri)
    return tracking_uri


@pytest.fixture
def model_name(request: pytest.FixtureRequest) -> str:
    """A registered-model name unique to this test, so tests sharing one server do not collide."""
    base = request.node.name[:40].replace("[", "-").replace("]", "")
    return f"test-{base}-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for a child process of a test: ours, plus ``extra``."""
    return {**os.environ, "PYTHONUNBUFFERED": "1", **extra}
