"""Micro-batching: concurrent requests share predict calls, each gets exactly its own rows, and
one request's error never reaches another."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from service.errors import InvalidInput
from service.runtime.batching import MicroBatcher, Predictor, _Job, predict_batch
from service.runtime.model import LoadedModel, Prediction

RNG = np.random.default_rng(7)


def random_rows(n: int) -> np.ndarray:
    return RNG.normal(loc=[5.8, 3.0, 3.7, 1.2], scale=[0.8, 0.4, 1.7, 0.7], size=(n, 4))


@pytest.fixture
async def batcher() -> AsyncIterator[tuple[MicroBatcher, list[tuple[int, int]]]]:
    calls: list[tuple[int, int]] = []
    executor = ThreadPoolExecutor(max_workers=1)
    b = MicroBatcher(executor, max_rows=64, max_wait_seconds=0.001,
                     observe=lambda requests, rows: calls.append((requests, rows)))  # fmt: skip
    await b.start()
    yield b, calls
    await b.stop()
    executor.shutdown()


async def test_each_caller_gets_exactly_its_rows(
    batcher: tuple[MicroBatcher, list[tuple[int, int]]], iris_model: LoadedModel
) -> None:
    b, calls = batcher
    inputs = [random_rows(int(RNG.integers(1, 6))) for _ in range(120)]
    results = await asyncio.gather(
        *(b.predict(iris_model, X, want_proba=i % 2 == 0) for i, X in enumerate(inputs))
    )
    for i, (X, result) in enumerate(zip(inputs, results, strict=True)):
        labels, proba = iris_model.predict(X, want_proba=True)
        assert proba is not None
        assert result.labels.tolist() == labels.tolist()
        if i % 2 == 0:
            assert result.proba is not None
            np.testing.assert_allclose(result.proba, proba, rtol=0, atol=1e-12)
        else:
            assert result.proba is None
    assert sum(requests for requests, _ in calls) == len(inputs)
    assert len(calls) < len(inputs) / 2, "concurrent requests should share predict calls"
    assert max(rows for _, rows in calls) <= 64


async def test_a_failing_request_does_not_fail_its_batch(
    batcher: tuple[MicroBatcher, list[tuple[int, int]]], iris_model: LoadedModel
) -> None:
    b, _ = batcher
    good = [random_rows(2) for _ in range(30)]
    bad = np.ones((1, 3))  # valid numpy, wrong width: the estimator raises
    tasks = [b.predict(iris_model, X, want_proba=False) for X in good[:15]]
    tasks.append(b.predict(iris_model, bad, want_proba=False))
    tasks += [b.predict(iris_model, X, want_proba=False) for X in good[15:]]
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[15], InvalidInput)
    rest = results[:15] + results[16:]
    for X, result in zip(good, rest, strict=True):
        assert isinstance(result, Prediction)
        assert result.labels.tolist() == iris_model.predict(X, want_proba=False)[0].tolist()


def test_predict_batch_isolates_errors_and_models(iris_model: LoadedModel) -> None:
    newer = LoadedModel.__new__(LoadedModel)
    newer.__dict__.update(iris_model.__dict__)
    newer.info = dataclasses.replace(iris_model.info, version="2")
    loop = asyncio.new_event_loop()
    try:
        jobs = [
            _Job(iris_model, random_rows(3), False, loop.create_future()),
            _Job(newer, random_rows(2), True, loop.create_future()),
            _Job(iris_model, np.ones((1, 5)), False, loop.create_future()),
            _Job(iris_model, random_rows(1), True, loop.create_future()),
        ]
    finally:
        loop.close()
    outcomes = predict_batch(jobs)
    assert isinstance(outcomes[2], InvalidInput)
    for i in (0, 1, 3):
        outcome = outcomes[i]
        assert isinstance(outcome, Prediction)
        assert outcome.model is jobs[i].model
        assert len(outcome.labels) == jobs[i].rows
        assert (outcome.proba is not None) == jobs[i].want_proba
    assert outcomes[1].model.info.version == "2"  # type: ignore[union-attr]


async def test_a_request_bigger_than_the_batch_limit_goes_alone(iris_model: LoadedModel) -> None:
    calls: list[tuple[int, int]] = []
    with ThreadPoolExecutor(max_workers=1) as executor:
        b = MicroBatcher(executor, max_rows=4, max_wait_seconds=0,
                         observe=lambda r, n: calls.append((r, n)))  # fmt: skip
        await b.start()
        try:
            small = [random_rows(1) for _ in range(10)]
            big = random_rows(10)
            results = await asyncio.gather(
                *(b.predict(iris_model, X, False) for X in [*small[:5], big, *small[5:]])
            )
        finally:
            await b.stop()
    assert [len(r.labels) for r in results] == [1] * 5 + [10] + [1] * 5
    assert (1, 10) in calls
    assert all(rows <= 4 for requests, rows in calls if requests > 1)


async def test_stop_fails_waiting_requests_instead_of_hanging(iris_model: LoadedModel) -> None:
    with ThreadPoolExecutor(max_workers=1) as executor:
        b = MicroBatcher(executor, max_rows=8, max_wait_seconds=0)
        await b.start()
        tasks = [asyncio.create_task(b.predict(iris_model, random_rows(1), False))
                 for _ in range(50)]  # fmt: skip
        await asyncio.sleep(0)
        await b.stop()
        results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)
    assert all(isinstance(r, Prediction | RuntimeError) for r in results)


async def test_unbatched_predictor(iris_model: LoadedModel) -> None:
    with ThreadPoolExecutor(max_workers=2) as executor:
        p = Predictor(executor)
        X = random_rows(4)
        result = await p.predict(iris_model, X, want_proba=True)
    assert result.labels.tolist() == iris_model.predict(X, False)[0].tolist()
    assert result.proba is not None
    assert result.proba.shape == (4, 3)


async def test_an_overflowing_request_fails_alone_in_its_batch(
    batcher: tuple[MicroBatcher, list[tuple[int, int]]], iris_model: LoadedModel
) -> None:
    """A row whose answer is not finite fails its own request (4xx naming the row) and no
    other request of the batch it landed in."""
    b, _ = batcher
    huge = np.full((1, 4), 1e308)
    inputs = [random_rows(2), huge, random_rows(3)]
    results = await asyncio.gather(
        *(b.predict(iris_model, X, want_proba=True) for X in inputs), return_exceptions=True
    )
    assert isinstance(results[1], InvalidInput)
    assert "row 0" in str(results[1])
    for i in (0, 2):
        result = results[i]
        assert isinstance(result, Prediction)
        assert result.proba is not None
        assert np.isfinite(result.proba).all()
