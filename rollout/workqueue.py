"""The operator's work queue: keyed, de-duplicated, rate-limited, fed by the watch, the webhook
and the periodic fresh read (as client-go's workqueue is).

- one entry per Deployment: adding a key that is already queued coalesces into that entry (a
  burst of 100 webhook deliveries is one reconcile per Deployment, not 100);
- a key being reconciled is not reconciled twice at once: added meanwhile, it runs once more
  right after;
- per key, reconciles start at least ``min_interval`` apart (a flapping watch cannot spin);
- first in, first out across keys: a webhook burst cannot push a polled Deployment back, since
  each key holds one place at most;
- ``add`` returns a future that resolves when a reconcile that started after the add ended
  (the poll loop waits for its cycle with it);
- ``add(..., after=s)`` asks for a reconcile no earlier than ``s`` seconds from now (as
  client-go's ``AddAfter``); an earlier add of the same key brings it forward.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
log = logging.getLogger(__name__)


@dataclass
class Item(Generic[K]):
    key: K
    trigger: str
    payload: dict[str, Any] = field(default_factory=dict)
    waiters: list[asyncio.Future[None]] = field(default_factory=list)
    not_before: float = 0.0


class WorkQueue(Generic[K]):
    def __init__(
        self,
        handle: Callable[[Item[K]], Awaitable[None]],
        *,
        workers: int = 4,
        min_interval: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._handle = handle
        self._workers = workers
        self._min_interval = min_interval
        self._clock = clock
        self._queued: OrderedDict[K, Item[K]] = OrderedDict()
        self._processing: set[K] = set()
        self._again: dict[K, Item[K]] = {}  # added while being processed
        self._last_start: dict[K, float] = {}
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.added = 0  # add() calls
        self.coalesced = 0  # add() calls merged into an entry already waiting

    def __len__(self) -> int:
        return len(self._queued) + len(self._again)

    def add(
        self, key: K, trigger: str, *, after: float = 0.0, **payload: Any
    ) -> asyncio.Future[None]:
        """Queue ``key`` (or merge into its waiting entry: the first trigger is kept, the
        newest payload wins, the earliest start wins)."""
        self.added += 1
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        pending = self._again if key in self._processing else self._queued
        not_before = self._clock() + after if after > 0 else 0.0
        item = pending.get(key)
        if item is not None:
            self.coalesced += 1
            item.payload.update(payload)
            item.waiters.append(waiter)
            item.not_before = min(item.not_before, not_before)
            self._wakeup.set()
            return waiter
        pending[key] = Item(key, trigger, dict(payload), [waiter], not_before)
        self._wakeup.set()
        return waiter

    def forget(self, key: K) -> None:
        self._last_start.pop(key, None)

    def start(self) -> None:
        for index in range(self._workers):
            self._tasks.append(asyncio.create_task(self._work(), name=f"reconcile-{index}"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        for item in [*self._queued.values(), *self._again.values()]:
            for waiter in item.waiters:
                waiter.cancel()

    def _next(self) -> tuple[Item[K] | None, float]:
        """The first entry allowed to start now, or how long until one is."""
        now = self._clock()
        wait = float("inf")
        for key, item in self._queued.items():
            ready_at = max(item.not_before, self._last_start.get(key, -1e18) + self._min_interval)
            if ready_at <= now:
                del self._queued[key]
                return item, 0.0
            wait = min(wait, ready_at - now)
        return None, wait

    async def _work(self) -> None:
        while True:
            item, wait = self._next()
            if item is None:
                self._wakeup.clear()
                timeout = None if wait == float("inf") else wait
                try:
                    await asyncio.wait_for(self._wakeup.wait(), timeout)
                except TimeoutError:
                    pass
                continue
            key = item.key
            self._processing.add(key)
            self._last_start[key] = self._clock()
            try:
                await self._handle(item)
            except Exception:  # a worker must outlive any one reconcile
                log.exception("reconcile of %s failed", key)
            finally:
                self._processing.discard(key)
                for waiter in item.waiters:
                    if not waiter.done():
                        waiter.set_result(None)
                again = self._again.pop(key, None)
                if again is not None:
                    self._queued[key] = again
                    self._wakeup.set()
