"""The registry client's backoff: one failed call per window, whatever the number of callers."""

from __future__ import annotations

import pytest

from mlkube.mlflow_server import free_port
from rollout.registry import Registry, RegistryUnavailable


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
        base_delay=2.0,
        max_delay=5.0,
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
        registry.tag("m", "1", "succeeded")
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
