"""Runs the model for concurrent requests: coalesced into shared batches (DynamicBatcher) or one run each
(DirectRunner). Neither runs a request whose deadline has passed, and both refuse a request that would bring
the images waiting for the model above `max_queue` (admission control: RESOURCE_EXHAUSTED, not an ever longer
queue whose callers all time out)."""
from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from mnist_edge.serve.errors import DeadlineExpired, Overloaded
from mnist_edge.serve.metrics import Metrics

RunFn = Callable[[np.ndarray], np.ndarray]
DEFAULT_MAX_QUEUE = 8192  # images: about a second of work for the int8 model on one core


def check_room(waiting: int, arriving: int, max_queue: int) -> None:
    """Refuses `arriving` images when `waiting` ones are queued already and together they exceed `max_queue`.
    A request always gets into an empty queue, so that one as large as --max-images allows is never refused."""
    if waiting and waiting + arriving > max_queue:
        raise Overloaded(
            f"the server is overloaded: {waiting} images wait for the model and it queues at most {max_queue}; "
            "retry later"
        )


class Runner(Protocol):
    async def infer(self, images: np.ndarray, deadline: float | None) -> np.ndarray:
        """Logits for `images`; `deadline` is on the event loop's clock (None: no deadline)."""

    async def close(self) -> None:
        """Stops taking work; awaited after the gRPC server has drained."""


@dataclass
class _Job:
    images: np.ndarray
    deadline: float | None
    queued_at: float
    future: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    def expired(self, now: float) -> bool:
        return self.deadline is not None and now >= self.deadline


class DynamicBatcher:
    """Coalesces concurrent requests into one model run of up to `max_batch` images.

    A batch takes whatever is already queued and, when that is more than one request but less than
    `max_batch` images, waits at most `max_delay_s` for more. A request that finds nobody else queued runs
    at once: a quiet server has no one to batch it with, and the wait would cost a lone caller the whole
    delay and more (asyncio timers are only about 1 ms fine). Requests are never split: one larger than
    `max_batch` runs as a batch of its own. One batch runs at a time, in a worker thread, while requests for
    the next one queue.
    """

    def __init__(
        self, run: RunFn, metrics: Metrics, max_batch: int, max_delay_s: float, max_queue: int = DEFAULT_MAX_QUEUE
    ) -> None:
        self._run, self._metrics = run, metrics
        self._max_batch, self._max_delay_s, self._max_queue = max_batch, max_delay_s, max_queue
        self._queue: collections.deque[_Job] = collections.deque()
        self._queued_images = 0  # in self._queue: admitted, not yet taken into a batch
        self._arrived = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batcher")
        self._worker = asyncio.create_task(self._serve_batches())

    @property
    def queued_images(self) -> int:
        return self._queued_images

    async def infer(self, images: np.ndarray, deadline: float | None) -> np.ndarray:
        check_room(self._queued_images, len(images), self._max_queue)
        job = _Job(images, deadline, asyncio.get_running_loop().time())
        self._queue.append(job)
        self._queued_images += len(images)
        self._arrived.set()
        return await job.future  # a cancelled caller cancels the future, and the batch skips it

    async def close(self) -> None:
        self._worker.cancel()
        await asyncio.gather(self._worker, return_exceptions=True)
        self._executor.shutdown()

    async def _serve_batches(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = [job for job in await self._gather_batch() if self._still_wanted(job, loop.time())]
            if not jobs:
                continue
            images = np.concatenate([job.images for job in jobs])
            self._metrics.batch_size.observe(len(images))
            try:
                logits = await loop.run_in_executor(self._executor, self._run, images)
            except Exception as error:  # the callers' handlers report it; the batcher keeps serving
                for job in jobs:
                    _settle(job, error=error)
                continue
            start = 0
            for job in jobs:
                _settle(job, result=logits[start:start + len(job.images)])
                start += len(job.images)

    async def _gather_batch(self) -> list[_Job]:
        loop = asyncio.get_running_loop()
        await self._wait_for_arrival(None)
        closes_at = loop.time() + self._max_delay_s
        jobs: list[_Job] = []
        size = 0
        while True:
            while self._queue and (not jobs or size + len(self._queue[0].images) <= self._max_batch):
                job = self._queue.popleft()
                self._queued_images -= len(job.images)
                jobs.append(job)
                size += len(job.images)
            if size >= self._max_batch or self._queue or len(jobs) == 1:  # full, next would not fit, or alone
                return jobs
            if not await self._wait_for_arrival(closes_at - loop.time()):
                return jobs

    def _still_wanted(self, job: _Job, now: float) -> bool:
        """False for a job whose caller was cancelled or whose deadline passed: its work is skipped."""
        if job.future.done():
            return False
        if job.expired(now):
            job.future.set_exception(DeadlineExpired("the deadline expired while the request waited for its batch"))
            return False
        self._metrics.queue_wait.observe(now - job.queued_at)
        return True

    async def _wait_for_arrival(self, timeout: float | None) -> bool:
        """Waits until a request is queued; False if `timeout` seconds pass first."""
        if self._queue:
            return True
        if timeout is not None and timeout <= 0:
            return False
        self._arrived.clear()
        try:
            await asyncio.wait_for(self._arrived.wait(), timeout)
        except TimeoutError:
            return False
        return True


class DirectRunner:
    """One model run per request (--no-batching), several at once on a thread pool."""

    def __init__(self, run: RunFn, metrics: Metrics, workers: int, max_queue: int = DEFAULT_MAX_QUEUE) -> None:
        self._run, self._metrics, self._max_queue = run, metrics, max_queue
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="runner")
        self._pending_images = 0  # admitted and not yet answered: waiting for a worker or running

    async def infer(self, images: np.ndarray, deadline: float | None) -> np.ndarray:
        loop = asyncio.get_running_loop()
        if deadline is not None and loop.time() >= deadline:
            raise DeadlineExpired("the deadline expired before the model ran")
        check_room(self._pending_images, len(images), self._max_queue)
        self._metrics.batch_size.observe(len(images))
        self._pending_images += len(images)
        try:
            return await loop.run_in_executor(self._executor, self._run, images)
        finally:
            self._pending_images -= len(images)

    async def close(self) -> None:
        self._executor.shutdown()


def _settle(job: _Job, *, result: np.ndarray | None = None, error: Exception | None = None) -> None:
    if job.future.done():  # the caller left while its batch ran
        return
    if error is not None:
        job.future.set_exception(error)
    else:
        job.future.set_result(result)
