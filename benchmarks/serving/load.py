"""Closed-loop load: each of `concurrency` callers sends its next request as soon as its last one is answered,
and every call's latency is kept.

The load generator is one grpc.aio channel (or one per caller, for the --workers cases) sending pre-serialized
requests and keeping the answers as bytes, so that it takes little of the CPU it shares with the server. The
server's CPU time is read from /proc before and after the measured run, after a short warm-up.
"""
from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc
import numpy as np

from mnist_edge.contract import to_model_input
from mnist_edge.serve.model import OnnxModel

from .cases import Case
from .messages import labels_in
from .process_stats import cpu_seconds
from .servers import Server

Call = Callable[[bytes], Awaitable[bytes]]
IN_PROCESS_WARM_UP = 10  # runs
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]  # channels of one process otherwise share a connection


@dataclass
class Load:
    latencies: list[float]  # seconds, one per call
    seconds: float  # wall time of the whole run
    client_cpu_s: float
    server_cpu_s: float


async def closed_loop(calls: list[Call], requests: list[bytes], concurrency: int, count: int,
                      seconds: float) -> tuple[list[float], float]:
    """Calls until `count` calls or `seconds` have passed, caller i through calls[i % len(calls)]; returns each
    call's latency and the wall time."""
    latencies: list[float] = []
    issued = 0
    ends_at = time.perf_counter() + seconds

    async def caller(call: Call) -> None:
        nonlocal issued
        while issued < count and time.perf_counter() < ends_at:
            request = requests[issued % len(requests)]
            issued += 1
            sent = time.perf_counter()
            await call(request)
            latencies.append(time.perf_counter() - sent)

    started = time.perf_counter()
    await asyncio.gather(*(caller(calls[i % len(calls)]) for i in range(concurrency)))
    return latencies, time.perf_counter() - started


async def check_answers(calls: list[Call], case: Case, requests: list[bytes], expected: list[list[int]]) -> None:
    """A server giving wrong answers is no result: each request's labels must match in-process ONNX Runtime's.
    The requests take turns over `calls`, so that every worker of a --workers server is asked."""
    if case.server == "floor":  # answers the same whatever it is asked
        return
    for i, (request, labels) in enumerate(zip(requests, expected, strict=True)):
        if labels_in(case, await calls[i % len(calls)](request)) != labels:
            raise RuntimeError(f"{case.name}: the server's labels differ from in-process ONNX Runtime")


async def load_server(server: Server, case: Case, requests: list[bytes], expected: list[list[int]],
                      concurrency: int, count: int, seconds: float) -> Load:
    """One concurrency level against a running server, after checking its answers and a warm-up."""
    async with contextlib.AsyncExitStack() as stack:
        channels = [await stack.enter_async_context(grpc.aio.insecure_channel(server.target, options=OWN_CONNECTION))
                    for _ in range(concurrency if case.connection_per_caller else 1)]
        calls = [channel.unary_unary(case.method) for channel in channels]  # no (de)serializers: bytes in and out
        await check_answers(calls, case, requests, expected)
        await closed_loop(calls, requests, concurrency, count // 10, seconds / 5)  # warm-up
        server_cpu, client_cpu = cpu_seconds(server.process.pid), time.process_time()
        latencies, wall = await closed_loop(calls, requests, concurrency, count, seconds)
        return Load(latencies, wall, time.process_time() - client_cpu, cpu_seconds(server.process.pid) - server_cpu)


def load_in_process(model: OnnxModel, images: np.ndarray, count: int, seconds: float) -> Load:
    """The ceiling: the same model and session settings, called back to back without any server."""
    batch = to_model_input(images)
    for _ in range(IN_PROCESS_WARM_UP):
        model.run(batch)
    latencies: list[float] = []
    cpu, started = time.process_time(), time.perf_counter()
    while len(latencies) < count and time.perf_counter() - started < seconds:
        sent = time.perf_counter()
        model.run(batch)
        latencies.append(time.perf_counter() - sent)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return Load(latencies, wall, client_cpu_s=cpu, server_cpu_s=cpu)  # client and server are one process
