"""DynamicBatcher in-process, with a fake model: coalescing, error fan-out, oversized requests, expired deadlines,
cancelled callers and the queue bound."""
from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from mnist_edge.serve.batcher import DirectRunner, DynamicBatcher
from mnist_edge.serve.errors import DeadlineExpired, Overloaded
from mnist_edge.serve.metrics import Metrics


class FakeModel:
    """Logits that identify each image (its first pixel in every column); records the batch sizes it ran, and
    holds each run until `release` is set when `hold` is."""

    def __init__(self, fail: bool = False, hold: bool = False) -> None:
        self.batches: list[int] = []
        self.fail = fail
        self.release = threading.Event()
        self.started = threading.Event()
        if not hold:
            self.release.set()

    def run(self, images: np.ndarray) -> np.ndarray:
        self.started.set()
        self.release.wait(10)
        self.batches.append(len(images))
        if self.fail:
            raise RuntimeError("the model broke")
        return np.repeat(images.reshape(len(images), -1)[:, :1], 10, axis=1)


def images(*ids: float) -> np.ndarray:
    """One image per id, every pixel equal to the id, so that each answer can be traced back to its request."""
    return np.stack([np.full((1, 28, 28), i, np.float32) for i in ids])


def run(coroutine):
    return asyncio.run(coroutine)


async def batcher_for(model: FakeModel, max_batch: int = 8, delay_s: float = 0.05, **kwargs) -> DynamicBatcher:
    return DynamicBatcher(model.run, Metrics(max_batch), max_batch, delay_s, **kwargs)


async def until_running(model: FakeModel) -> None:
    while not model.started.is_set():
        await asyncio.sleep(0.001)


def test_concurrent_requests_share_one_run_and_each_gets_its_own_answer():
    async def scenario():
        model = FakeModel(hold=True)
        batcher = await batcher_for(model)
        first = asyncio.create_task(batcher.infer(images(9), None))  # runs alone, and holds the model
        await until_running(model)
        others = [asyncio.create_task(batcher.infer(images(i, i + 0.5), None)) for i in range(3)]
        await asyncio.sleep(0.01)  # all three queue behind the first
        model.release.set()
        results = await asyncio.gather(first, *others)
        await batcher.close()
        return model.batches, results

    batches, results = run(scenario())
    assert batches == [1, 6]  # the three waiting requests coalesced into one run
    assert results[0][:, 0].tolist() == [9]
    for i, logits in enumerate(results[1:]):
        assert logits.shape == (2, 10) and logits[:, 0].tolist() == [i, i + 0.5]


def test_a_failed_batch_fails_every_request_in_it_and_the_batcher_goes_on():
    async def scenario():
        model = FakeModel(fail=True)
        batcher = await batcher_for(model)
        outcomes = await asyncio.gather(*(batcher.infer(images(i), None) for i in range(4)), return_exceptions=True)
        model.fail = False
        after = await batcher.infer(images(7), None)
        await batcher.close()
        return outcomes, after

    outcomes, after = run(scenario())
    assert all(isinstance(outcome, RuntimeError) and str(outcome) == "the model broke" for outcome in outcomes)
    assert after[:, 0].tolist() == [7]


def test_a_request_larger_than_max_batch_runs_whole_on_its_own():
    async def scenario():
        model = FakeModel(hold=True)
        batcher = await batcher_for(model, max_batch=4)
        small = asyncio.create_task(batcher.infer(images(1), None))
        await until_running(model)
        large = asyncio.create_task(batcher.infer(images(*range(10)), None))
        after = asyncio.create_task(batcher.infer(images(2, 3), None))
        await asyncio.sleep(0.01)
        model.release.set()
        results = await asyncio.gather(small, large, after)
        await batcher.close()
        return model.batches, results

    batches, (small, large, after) = run(scenario())
    assert batches == [1, 10, 2]  # never split, never joined with the next request
    assert large[:, 0].tolist() == list(range(10)) and after[:, 0].tolist() == [2, 3]


def test_expired_and_cancelled_requests_are_skipped():
    async def scenario():
        model = FakeModel(hold=True)
        batcher = await batcher_for(model)
        loop = asyncio.get_running_loop()
        first = asyncio.create_task(batcher.infer(images(1), None))
        await until_running(model)
        expired = asyncio.create_task(batcher.infer(images(2), loop.time() + 0.01))
        cancelled = asyncio.create_task(batcher.infer(images(3), None))
        kept = asyncio.create_task(batcher.infer(images(4), loop.time() + 10))
        await asyncio.sleep(0.05)  # the first deadline passes while the model is busy
        cancelled.cancel()
        model.release.set()
        outcomes = await asyncio.gather(first, expired, cancelled, kept, return_exceptions=True)
        await batcher.close()
        return model.batches, outcomes

    batches, (first, expired, cancelled, kept) = run(scenario())
    assert isinstance(expired, DeadlineExpired)
    assert isinstance(cancelled, asyncio.CancelledError)
    assert batches == [1, 1]  # only the kept request ran after the first
    assert kept[:, 0].tolist() == [4]


def test_the_queue_is_bounded_but_an_empty_queue_takes_any_request():
    async def scenario():
        model = FakeModel(hold=True)
        batcher = await batcher_for(model, max_queue=5)
        running = asyncio.create_task(batcher.infer(images(*range(8)), None))  # not queued once it runs
        await until_running(model)
        queued = asyncio.create_task(batcher.infer(images(*range(4)), None))
        await asyncio.sleep(0)
        assert batcher.queued_images == 4
        with pytest.raises(Overloaded) as refused:
            await batcher.infer(images(1, 2), None)  # 4 + 2 > 5
        fits = asyncio.create_task(batcher.infer(images(5), None))  # 4 + 1 = 5
        await asyncio.sleep(0)
        model.release.set()
        await asyncio.gather(running, queued, fits)
        assert batcher.queued_images == 0
        alone = await batcher.infer(images(*range(9)), None)  # larger than the bound, into an empty queue
        await batcher.close()
        return refused.value, alone

    refused, alone = run(scenario())
    assert "4 images wait" in str(refused) and "at most 5" in str(refused)
    assert refused.code.name == "RESOURCE_EXHAUSTED"
    assert len(alone) == 9


def test_the_direct_runner_bounds_the_images_it_has_taken():
    async def scenario():
        model = FakeModel(hold=True)
        runner = DirectRunner(model.run, Metrics(8), workers=1, max_queue=5)
        first = asyncio.create_task(runner.infer(images(*range(4)), None))
        await until_running(model)
        with pytest.raises(Overloaded):
            await runner.infer(images(1, 2), None)
        model.release.set()
        await first
        after = await runner.infer(images(1, 2), None)
        await runner.close()
        return after

    assert run(scenario())[:, 0].tolist() == [1, 2]
