"""The operator's work queue (issue #13 item 7): keyed, de-duplicated, rate-limited."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from rollout.settings import OperatorSettings
from rollout.webhook import AliasChanged
from rollout.workqueue import Item, WorkQueue


class Recorder:
    def __init__(self, delay: float = 0.0) -> None:
        self.seen: list[tuple[str, str]] = []
        self.delay = delay
        self.running: set[str] = set()
        self.overlaps = 0

    async def __call__(self, item: Item[str]) -> None:
        if item.key in self.running:
            self.overlaps += 1
        self.running.add(item.key)
        self.seen.append((item.key, item.trigger))
        await asyncio.sleep(self.delay)
        self.running.discard(item.key)


async def test_a_burst_for_one_key_is_one_reconcile() -> None:
    handle = Recorder()
    queue: WorkQueue[str] = WorkQueue(handle, workers=2, min_interval=0.0)
    waiters = [queue.add("serving/a", "webhook") for _ in range(100)]
    queue.start()
    await asyncio.wait_for(asyncio.gather(*waiters), 5)
    await queue.stop()
    assert handle.seen == [("serving/a", "webhook")]
    assert queue.coalesced == 99


async def test_added_while_running_runs_once_more_never_twice_at_once() -> None:
    handle = Recorder(delay=0.05)
    queue: WorkQueue[str] = WorkQueue(handle, workers=4, min_interval=0.0)
    queue.start()
    first = queue.add("a", "event")
    await asyncio.sleep(0.01)  # now running
    later = [queue.add("a", "webhook") for _ in range(10)]
    await asyncio.wait_for(asyncio.gather(first, *later), 5)
    await queue.stop()
    assert handle.seen == [("a", "event"), ("a", "webhook")]
    assert handle.overlaps == 0


async def test_a_webhook_storm_does_not_starve_the_poll() -> None:
    handle = Recorder(delay=0.001)
    queue: WorkQueue[str] = WorkQueue(handle, workers=1, min_interval=0.05)
    queue.start()
    stop = asyncio.Event()

    async def storm() -> None:
        while not stop.is_set():
            queue.add("hot", "webhook")
            await asyncio.sleep(0)

    task = asyncio.create_task(storm())
    await asyncio.sleep(0.02)
    polled = queue.add("cold", "poll")
    await asyncio.wait_for(polled, 1.0)
    stop.set()
    await task
    await queue.stop()
    hot = [k for k, _ in handle.seen if k == "hot"]
    assert ("cold", "poll") in handle.seen
    # Rate-limited per key: at most one start per 50 ms for the hot key.
    assert len(hot) <= 1 + 1.0 / 0.05


@pytest.fixture
def kubeconfig(tmp_path: Path) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "x",
        "clusters": [{"name": "x", "cluster": {"server": "http://127.0.0.1:9"}}],
        "users": [{"name": "x", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "x", "user": "x", "namespace": "ns"}}],
    }))  # fmt: skip
    return str(path)


async def test_webhooks_coalesce_and_leave_the_registry_backoff_alone(kubeconfig: str) -> None:
    from rollout.app import Operator

    settings = OperatorSettings(MLFLOW_TRACKING_URI="http://127.0.0.1:9")
    operator = Operator(settings, kubeconfig=kubeconfig, liveness=None)
    try:
        operator.deployments[("ns", "web")] = {
            "metadata": {"name": "web", "namespace": "ns",
                         "labels": {"mlkube.io/model-name": "m"}},
        }  # fmt: skip
        operator.registry._back_off()  # MLflow just failed: the window is open
        assert operator.registry.backing_off
        change = AliasChanged("m", "production", "2", 0.0, "d")
        counts = [await operator.on_alias(change) for _ in range(20)]
        assert counts == [1] * 20
        assert len(operator.queue) == 1  # one reconcile for the Deployment, not 20
        assert operator.registry.backing_off  # a webhook does not reopen the gate
        ok, detail = operator.readiness()
        assert not ok
        assert "no answer from the Kubernetes API server" in detail
    finally:
        await operator.queue.stop()
        operator.kube.close()


async def test_add_after_waits_and_an_earlier_add_brings_it_forward() -> None:
    handle = Recorder()
    queue: WorkQueue[str] = WorkQueue(handle, workers=1, min_interval=0.0)
    queue.start()
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(queue.add("a", "recheck", after=0.2), 5)
    assert loop.time() - started >= 0.2
    # A recheck far ahead, then an event: the event does not wait for the recheck's time.
    queue.add("b", "recheck", after=60)
    event = queue.add("b", "event")
    await asyncio.wait_for(event, 5)
    await queue.stop()
    assert handle.seen == [("a", "recheck"), ("b", "recheck")]
