"""A server interceptor for every unary call: parses the request itself (so a corrupt message is the client's
INVALID_ARGUMENT, not gRPC's UNKNOWN), measures the call, logs server faults and optionally every call, and
knows when no unary call is left (streams such as health Watch never end by themselves)."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from serve.logs import log
from serve.metrics import Metrics


class ObservingInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, metrics: Metrics, log_requests: bool) -> None:
        self._metrics, self._log_requests = metrics, log_requests
        self._calls = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}  # the observed handler of each unary method

    async def wait_idle(self) -> None:
        """Returns once every unary call has ended, its answer sent."""
        await self._idle.wait()

    def _call_ended(self, context: grpc.aio.ServicerContext) -> None:
        self._calls -= 1
        if self._calls == 0:
            self._idle.set()

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None:  # streams (health Watch, reflection) pass as they are
            return handler
        observed = self._handlers.get(details.method)
        if observed is None:  # services register one handler per method, so it is wrapped once
            behavior = self._observe(details.method.lstrip("/"), handler.unary_unary, handler.request_deserializer)
            observed = grpc.unary_unary_rpc_method_handler(behavior, response_serializer=handler.response_serializer)
            self._handlers[details.method] = observed
        return observed

    def _observe(
        self, method: str, behavior: Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]],
        deserialize: Callable[[bytes], Any],
    ) -> Callable[[bytes, grpc.aio.ServicerContext], Awaitable[Any]]:
        metrics = self._metrics
        latency, answered = metrics.latency.labels(method), metrics.requests.labels(method, "OK")

        async def observed(raw: bytes, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            self._calls += 1
            self._idle.clear()
            context.add_done_callback(self._call_ended)  # runs once the answer is out, unlike `finally`
            metrics.in_flight.inc()
            try:
                return await behavior(await parse(raw, deserialize, context), context)
            except asyncio.CancelledError:  # the client cancelled, or its deadline passed
                remaining = context.time_remaining()
                expired = remaining is not None and remaining <= 0
                code = grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.CANCELLED
                raise
            except Exception:
                code = context.code() or grpc.StatusCode.UNKNOWN
                if code == grpc.StatusCode.UNKNOWN:  # not an abort: a server fault, never a client's mistake
                    log("error", logging.ERROR, exc_info=True, method=method)
                raise
            finally:
                seconds = time.perf_counter() - started
                metrics.in_flight.dec()
                (answered if code == grpc.StatusCode.OK else metrics.requests.labels(method, code.name)).inc()
                latency.observe(seconds)
                if self._log_requests:
                    log("request", method=method, code=code.name, ms=round(seconds * 1000, 3))

        return observed


async def parse(raw: bytes, deserialize: Callable[[bytes], Any], context: grpc.aio.ServicerContext) -> Any:
    try:
        return deserialize(raw)
    except DecodeError as error:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"the request is not valid protobuf: {error}")
