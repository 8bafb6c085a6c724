"""Loading retries with capped backoff while the registry is away, and never gives up."""

from __future__ import annotations

import asyncio

import pytest

from mlkube.core.processes import free_port
from service.errors import ModelNotLoaded
from service.loader import LOAD_BACKOFF, ModelStore, keep_loaded
from service.runtime.model import LoadedModel
from service.settings import Settings

MAX_RETRY_SECONDS = LOAD_BACKOFF.cap


async def test_retries_with_capped_backoff_until_cancelled() -> None:
    settings = Settings(MLFLOW_TRACKING_URI=f"http://127.0.0.1:{free_port()}", MODEL_NAME="m")
    store = ModelStore()
    delays: list[float] = []
    failures: list[str] = []

    async def fake_sleep(seconds: float) -> None:
        delays.append(seconds)
        if len(delays) == 9:
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await keep_loaded(store, settings, lambda m, p: None, failures.append, sleep=fake_sleep)
    assert delays == [0.5, 1, 2, 4, 8, MAX_RETRY_SECONDS, MAX_RETRY_SECONDS,
                      MAX_RETRY_SECONDS, MAX_RETRY_SECONDS]  # fmt: skip
    assert len(failures) == 9
    assert store.attempts == 9
    assert store.current is None
    assert store.last_error is not None
    assert "Connection refused" in store.last_error
    with pytest.raises(ModelNotLoaded, match="Connection refused"):
        store.require()


def test_swap_returns_the_previous_model(iris_model: LoadedModel) -> None:
    store = ModelStore()
    store.last_error = "earlier failure"
    assert store.swap(iris_model) is None
    assert store.require() is iris_model
    assert store.last_error is None
    assert store.swap(iris_model) is iris_model
