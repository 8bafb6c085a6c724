"""Watch mode: a new version behind the alias is loaded and swapped in while requests keep
flowing, and none of them fails."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.integration.service.conftest import ServiceProcess, train
from tests.timeouts import HTTP_S, PROCESS_START_S, PROCESS_STOP_S

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


class Load:
    """Concurrent clients posting /predict in a background thread until stopped."""

    def __init__(self, url: str, clients: int = 8) -> None:
        self.url = url
        self.clients = clients
        self.versions: list[str] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _client(self) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=HTTP_S) as client:
            while not self._stop.is_set():
                try:
                    answer = await client.post("/predict", json={"instances": ROWS})
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                    continue
                if answer.status_code != 200:
                    self.failures.append(f"{answer.status_code} {answer.text}")
                elif answer.json()["predictions"] != ["setosa", "virginica"]:
                    self.failures.append(f"wrong answer {answer.text}")
                else:
                    self.versions.append(answer.json()["model_version"])

    async def _run(self) -> None:
        await asyncio.gather(*(self._client() for _ in range(self.clients)))

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=PROCESS_STOP_S)


def test_swap_under_load_without_failures(tracking_uri: str, tmp_path: Path) -> None:
    name = f"watch-iris-{uuid.uuid4().hex[:6]}"
    first = train(tracking_uri, name)
    with ServiceProcess(
        tmp_path / "service.log", MLFLOW_TRACKING_URI=tracking_uri, MODEL_NAME=name,
        MODEL_WATCH_SECONDS="0.5",
    ) as service:  # fmt: skip
        service.wait("/healthz/ready")
        with Load(service.url) as load:
            service.eventually(lambda: len(load.versions) >= 50, "50 answers before the swap")
            second = train(tracking_uri, name, "--force-promote", "--seed", "2")
            assert second != first
            service.eventually(
                lambda: (
                    httpx.get(service.url + "/model", timeout=HTTP_S).json()["version"] == second
                ),
                f"version {second} swapped in",
                timeout=PROCESS_START_S,
            )
            served_after_swap = len(load.versions)
            service.eventually(
                lambda: len(load.versions) >= served_after_swap + 50, "50 answers after the swap"
            )
        assert load.failures == []
        seen = Counter(load.versions)
        assert seen[first] > 0, seen
        assert seen[second] > 0, seen
        assert load.versions[-1] == second
        metrics = httpx.get(service.url + "/metrics", timeout=HTTP_S).text
        assert f'version="{second}"' in metrics
        assert f'mlkube_serve_model_info{{alias="production",name="{name}"' in metrics
        info_lines = [ln for ln in metrics.splitlines() if ln.startswith("mlkube_serve_model_info")]
        assert len(info_lines) == 1
        assert f'version="{second}"' in info_lines[0]
