"""The registry client's backoff: one failed call per window, whatever the number of callers."""

from __future__ import annotations

import http.server
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from mlkube.core.backoff import Backoff
from mlkube.core.processes import free_port
from rollout.registry import Registry, RegistryRefused, RegistryUnavailable


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_unreachable_mlflow_backs_off_exponentially(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    clock = Clock()
    errors: list[int] = []
    registry = Registry(
        f"http://127.0.0.1:{free_port()}",  # nothing listens: connection refused
        backoff=Backoff(first=2.0, cap=5.0),
        on_error=lambda: errors.append(1),
        clock=clock,
    )
    with pytest.raises(RegistryUnavailable, match="unreachable"):
        registry.resolve("m", "production")
    assert len(errors) == 1
    assert registry.backing_off

    # Within the window: no call at all (no second error counted), fails fast.
    clock.now += 1.9
    with pytest.raises(RegistryUnavailable, match="backed off"):
        registry.tag("m", "1", {"mlkube.rollout/ns/web": "succeeded"})
    assert len(errors) == 1

    clock.now += 0.2  # window over: one more try, the next window doubles (2 s -> 4 s)
    with pytest.raises(RegistryUnavailable, match="unreachable"):
        registry.resolve("m", "production")
    assert len(errors) == 2
    clock.now += 3.9
    assert registry.backing_off
    clock.now += 0.2
    assert not registry.backing_off

    # Capped at max_delay; a webhook (MLflow calling us) opens the gate at once.
    for _ in range(3):
        clock.now += 10
        with pytest.raises(RegistryUnavailable):
            registry.resolve("m", "production")
    clock.now += 4.9
    assert registry.backing_off
    registry.reset_backoff()
    assert not registry.backing_off


# --- what MLflow's answers mean ------------------------------------------------------------------

# Answers as MLflow gives them: its basic-auth app answers 401/403 in plain text; the registry
# answers JSON errors (the alias of an existing model not found is INVALID_PARAMETER_VALUE).
UNAUTHENTICATED = (
    401,
    "text/html",
    "You are not authenticated. Please see ... how to authenticate.",
)
FORBIDDEN = (403, "text/html", "Permission denied")
NO_MODEL = (
    404,
    "application/json",
    json.dumps(
        {
            "error_code": "RESOURCE_DOES_NOT_EXIST",
            "message": "Registered Model with name=m not found",
        }
    ),
)
NO_ALIAS = (
    400,
    "application/json",
    json.dumps(
        {
            "error_code": "INVALID_PARAMETER_VALUE",
            "message": "Registered model alias production not found.",
        }
    ),
)
BAD_NAME = (
    400,
    "application/json",
    json.dumps(
        {
            "error_code": "INVALID_PARAMETER_VALUE",
            "message": "Invalid model name 'x'.",
        }
    ),
)
NOT_MLFLOW = (404, "text/html", "<html><body>404 page not found</body></html>")
VERSION_3 = (
    200,
    "application/json",
    json.dumps({"model_version": {"name": "m", "version": "3", "tags": []}}),
)


class StubMlflow:
    """A loopback HTTP server answering every request with the next scripted answer."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, str, str]] = []
        self.paths: list[str] = []
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                stub.paths.append(self.path.split("?")[0])
                status, kind, body = stub.answers.pop(0)
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.uri = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> Iterator[StubMlflow]:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    server = StubMlflow()
    yield server
    server.close()


def registry_for(stub: StubMlflow, errors: list[int]) -> tuple[Registry, Clock]:
    clock = Clock()
    registry = Registry(
        stub.uri,
        backoff=Backoff(first=2.0, cap=8.0),
        on_error=lambda: errors.append(1),
        clock=clock,
    )
    return registry, clock


@pytest.mark.parametrize(("answer", "status"), [(UNAUTHENTICATED, 401), (FORBIDDEN, 403)])
def test_401_and_403_are_registry_errors_said_loudly(
    stub: StubMlflow, caplog: pytest.LogCaptureFixture, answer: tuple[int, str, str], status: int
) -> None:
    """Credentials missing or without permission: not "alias not set" (which would leave the
    Deployment as it is in silence) but a WARNING naming MLflow and the status, counted."""
    errors: list[int] = []
    registry, clock = registry_for(stub, errors)
    stub.answers = [answer]
    with caplog.at_level(logging.WARNING, logger="rollout.registry"):
        with pytest.raises(RegistryRefused, match=f"refused alias production of model m: {status}"):
            registry.resolve("m", "production")
    assert errors == [1]
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert stub.uri in record.getMessage()
    assert f": {status} " in record.getMessage()
    assert "MLFLOW_TRACKING_USERNAME" in record.getMessage()
    # It concerns every call: backed off like an unreachable server (no call, no new error).
    with pytest.raises(RegistryUnavailable, match="backed off"):
        registry.resolve("m", "production")
    assert errors == [1]
    assert stub.paths == ["/api/2.0/mlflow/registered-models/alias"]
    # Once MLflow lets us in, the answer is used.
    clock.now += 2.1
    stub.answers = [VERSION_3]
    target = registry.resolve("m", "production")
    assert target is not None
    assert target.version == "3"
    assert not registry.backing_off


@pytest.mark.parametrize("answer", [NO_MODEL, NO_ALIAS])
def test_model_or_alias_not_found_means_alias_not_set(
    stub: StubMlflow, caplog: pytest.LogCaptureFixture, answer: tuple[int, str, str]
) -> None:
    errors: list[int] = []
    registry, _ = registry_for(stub, errors)
    stub.answers = [answer]
    with caplog.at_level(logging.WARNING, logger="rollout.registry"):
        assert registry.resolve("m", "production") is None
    assert errors == []
    assert caplog.records == []
    assert not registry.backing_off


def test_other_4xx_are_errors_for_that_call_only(
    stub: StubMlflow, caplog: pytest.LogCaptureFixture
) -> None:
    """A 400 about one model (a bad name) is loud and counted, but does not hold up the
    other Deployments' lookups; a 404 from something that is not MLflow's API concerns every
    call (a wrong tracking URI) and backs off."""
    errors: list[int] = []
    registry, _ = registry_for(stub, errors)
    stub.answers = [BAD_NAME, VERSION_3, NOT_MLFLOW]
    with caplog.at_level(logging.WARNING, logger="rollout.registry"):
        with pytest.raises(RegistryRefused, match="400 INVALID_PARAMETER_VALUE: Invalid model"):
            registry.resolve("x", "production")
        assert not registry.backing_off
        assert registry.resolve("m", "production") is not None
        with pytest.raises(RegistryRefused, match="404"):
            registry.resolve("m", "production")
    assert registry.backing_off
    assert errors == [1, 1]
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.WARNING]


def test_tagging_refused_is_an_error_and_a_deleted_version_is_not(stub: StubMlflow) -> None:
    errors: list[int] = []
    registry, clock = registry_for(stub, errors)
    stub.answers = [FORBIDDEN]
    with pytest.raises(RegistryRefused, match="refused tagging model m version 3: 403"):
        registry.tag("m", "3", {"mlkube.rollout/ns/web": "succeeded"})
    assert errors == [1]
    clock.now += 2.1
    stub.answers = [NO_MODEL]
    registry.tag(
        "m", "3", {"mlkube.rollout/ns/web": "succeeded"}
    )  # nothing left to tag: not an error
    assert errors == [1]


def test_server_errors_are_unavailable(stub: StubMlflow) -> None:
    errors: list[int] = []
    registry, _ = registry_for(stub, errors)
    stub.answers = [(500, "application/json", json.dumps({"error_code": "INTERNAL_ERROR"}))]
    with pytest.raises(RegistryUnavailable, match="unreachable"):
        registry.resolve("m", "production")
    assert errors == [1]
