"""Adaptive micro-batching: concurrent requests share one ``predict`` call.

A scikit-learn ``predict`` costs about the same for 1 row as for 100 (input validation dominates),
so under load the way to more requests per second is fewer, larger calls. One worker coroutine
takes the first waiting request, adds every request already queued (up to
``SERVE_BATCH_MAX_ROWS`` rows), and predicts them in one call in a worker thread, so the event
loop keeps reading requests meanwhile; those form the next batch. (A call measured at load to
take less than the thread round trip itself runs on the loop: see ``INLINE_SECONDS``.) With a
single client the queue is
always empty and a request is predicted at once: batching adds no latency when there is nothing
to batch. Only when the previous batch held several requests (the server is under concurrent
load) does the worker wait up to ``SERVE_BATCH_MAX_WAIT_MS`` for more.

Each caller gets exactly its own rows back, from the model version it submitted with. When a
batched call fails, each request of that batch is predicted alone, so one request's error never
reaches another's answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from service.runtime.model import Array, LoadedModel, Prediction
from service.runtime.schema import Features

log = logging.getLogger(__name__)

BatchObserver = Callable[[int, int], None]  # (requests, rows) per predict call

# Handing a call to the worker thread and back costs ~70-100 us on this machine. A predict
# expected to take less than this runs on the event loop itself: blocking the loop that long
# is cheaper than the round trip, and it still keeps accepting between batches.
INLINE_SECONDS = 0.0003


@dataclass(slots=True)
class _Job:
    model: LoadedModel
    X: Array
    want_proba: bool
    future: asyncio.Future[Prediction] = field(repr=False)

    @property
    def rows(self) -> int:
        return int(self.X.shape[0])


class Predictor:
    """Predicts each request on its own, in a worker thread (SERVE_BATCHING=false)."""

    def __init__(self, executor: Executor, observe: BatchObserver | None = None) -> None:
        self._executor = executor
        self._observe = observe

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def predict(self, model: LoadedModel, X: Features, want_proba: bool) -> Prediction:
        if isinstance(X, np.ndarray) and model.estimated_seconds(len(X)) <= INLINE_SECONDS:
            labels, proba = model.predict(X, want_proba)
        else:
            loop = asyncio.get_running_loop()
            labels, proba = await loop.run_in_executor(self._executor, model.predict, X, want_proba)
        if self._observe is not None:
            self._observe(1, len(X))
        return Prediction(model, labels, proba)


class MicroBatcher(Predictor):
    """Gathers concurrent float64 requests into one predict call (see the module docstring)."""

    def __init__(
        self,
        executor: Executor,
        *,
        max_rows: int,
        max_wait_seconds: float,
        observe: BatchObserver | None = None,
    ) -> None:
        super().__init__(executor, observe)
        self._max_rows = max_rows
        self._max_wait = max_wait_seconds
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._carry: _Job | None = None
        self._last_batch_requests = 0
        self._worker: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.create_task(self._run(), name="micro-batcher")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
            self._worker = None
        pending = [self._carry] if self._carry is not None else []
        self._carry = None
        while not self._queue.empty():
            pending.append(self._queue.get_nowait())
        _fail(pending, RuntimeError("the server is shutting down"))

    async def predict(self, model: LoadedModel, X: Features, want_proba: bool) -> Prediction:
        if not isinstance(X, np.ndarray) or not model.fast:
            return await super().predict(model, X, want_proba)  # typed frames: one by one
        if self._worker is None:
            raise RuntimeError("the micro-batcher is not started")
        future: asyncio.Future[Prediction] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Job(model, X, want_proba, future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._gather()
            try:
                if _cheap(batch):
                    outcomes = predict_batch(batch)
                else:
                    outcomes = await loop.run_in_executor(self._executor, predict_batch, batch)
            except asyncio.CancelledError:
                _fail(batch, RuntimeError("the server is shutting down"))
                raise
            except Exception as exc:  # the executor itself failed: answer, keep batching
                log.exception("batch of %d requests failed", len(batch))
                _fail(batch, exc)
                continue
            for job, outcome in zip(batch, outcomes, strict=True):
                if job.future.done():  # the client went away
                    continue
                if isinstance(outcome, Exception):
                    job.future.set_exception(outcome)
                else:
                    job.future.set_result(outcome)
            if self._observe is not None:
                self._observe(len(batch), sum(job.rows for job in batch))

    async def _gather(self) -> list[_Job]:
        if self._carry is not None:
            first, self._carry = self._carry, None
        else:
            first = await self._queue.get()
        batch = [first]
        rows = first.rows
        rows = self._drain(batch, rows)
        if self._max_wait > 0 and self._last_batch_requests > 1 and rows < self._max_rows:
            # Under concurrent load: give requests being read right now a moment to join.
            await asyncio.sleep(self._max_wait)
            rows = self._drain(batch, rows)
        self._last_batch_requests = len(batch)
        return batch

    def _drain(self, batch: list[_Job], rows: int) -> int:
        while self._carry is None and rows < self._max_rows:
            try:
                job = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            if job.future.done():
                continue
            if rows + job.rows > self._max_rows:
                self._carry = job  # first of the next batch
                break
            batch.append(job)
            rows += job.rows
        return rows


def predict_batch(batch: list[_Job]) -> list[Prediction | Exception]:
    """Runs in the worker thread: one predict call per model version in the batch; on failure,
    each request alone."""
    outcomes: list[Prediction | Exception | None] = [None] * len(batch)
    by_model: dict[int, list[int]] = {}
    for i, job in enumerate(batch):
        by_model.setdefault(id(job.model), []).append(i)
    for indices in by_model.values():
        model = batch[indices[0]].model
        want_proba = any(batch[i].want_proba for i in indices)
        try:
            if len(indices) == 1:
                X = batch[indices[0]].X
            else:
                X = np.concatenate([batch[i].X for i in indices])
            labels, proba = model.predict(X, want_proba)
        except Exception:
            if len(indices) == 1:
                outcomes[indices[0]] = _alone(batch[indices[0]])
            else:
                for i in indices:
                    outcomes[i] = _alone(batch[i])
            continue
        offset = 0
        for i in indices:
            job = batch[i]
            end = offset + job.rows
            outcomes[i] = Prediction(
                model,
                labels[offset:end],
                proba[offset:end] if proba is not None and job.want_proba else None,
            )
            offset = end
    return [o if o is not None else RuntimeError("no outcome") for o in outcomes]


def _cheap(batch: list[_Job]) -> bool:
    rows: dict[int, int] = {}
    for job in batch:
        rows[id(job.model)] = rows.get(id(job.model), 0) + job.rows
    models = {id(job.model): job.model for job in batch}
    cost = sum(models[key].estimated_seconds(n) for key, n in rows.items())
    return cost <= INLINE_SECONDS


def _fail(jobs: list[_Job], exc: Exception) -> None:
    for job in jobs:
        if not job.future.done():
            job.future.set_exception(exc)


def _alone(job: _Job) -> Prediction | Exception:
    try:
        labels, proba = job.model.predict(job.X, job.want_proba)
    except Exception as exc:
        return exc
    return Prediction(job.model, labels, proba)
