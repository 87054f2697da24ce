"""A server interceptor for every unary call: parses the request itself (so a corrupt message is the client's
INVALID_ARGUMENT, not gRPC's UNKNOWN), measures the call, logs server faults and optionally every call; and
for streaming calls, which never end by themselves (health Watch), a way to end them all at shutdown."""
from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from mnist_edge.serve import rpc
from mnist_edge.serve.logs import log
from mnist_edge.serve.metrics import Metrics


class ObservingInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, metrics: Metrics, log_requests: bool) -> None:
        self._metrics, self._log_requests = metrics, log_requests
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}  # the wrapped handler of each method
        self._streams: set[asyncio.Task] = set()  # the streaming calls being answered
        self._ending_streams = False
        self.last_arrival = 0.0  # on the event loop's clock: when the latest call reached the server's Python side

    async def wait_quiet(self, quiet_s: float, longest_s: float) -> None:
        """Returns once no call has arrived for `quiet_s` seconds, or after `longest_s` seconds at the most."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + longest_s
        while (now := loop.time()) < give_up and now - self.last_arrival < quiet_s:
            await asyncio.sleep(min(quiet_s - (now - self.last_arrival), give_up - now))

    def end_streams(self) -> None:
        """Ends every streaming call with OK, now and from now on (at shutdown: a health Watch would otherwise
        hold the server for its whole grace period)."""
        self._ending_streams = True
        for stream in self._streams:
            stream.cancel()

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        self.last_arrival = asyncio.get_running_loop().time()
        handler = await continuation(details)
        if handler is None:
            return handler
        wrapped = self._handlers.get(details.method)
        if wrapped is None:  # services register one handler per method, so it is wrapped once
            wrapped = self._wrap(details.method, handler)
            self._handlers[details.method] = wrapped
        return wrapped

    def _wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        if handler.unary_unary is not None:
            behavior = self._observe(method.lstrip("/"), handler.unary_unary, handler.request_deserializer)
            return grpc.unary_unary_rpc_method_handler(behavior, response_serializer=handler.response_serializer)
        serializers = {"request_deserializer": handler.request_deserializer,
                       "response_serializer": handler.response_serializer}
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(self._endable(handler.unary_stream), **serializers)
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(self._endable(handler.stream_stream), **serializers)
        return handler  # client streams: this server has none

    def _endable(self, behavior: Callable[[Any, grpc.aio.ServicerContext], Any]) -> Callable[..., Awaitable[None]]:
        """A streaming behavior that end_streams() can end; it answers through context.write either way."""

        async def answer(request: Any, context: grpc.aio.ServicerContext) -> None:
            result = behavior(request, context)
            if inspect.isasyncgen(result):
                async for response in result:
                    await context.write(response)
            elif inspect.isawaitable(result):
                await result

        async def endable(request: Any, context: grpc.aio.ServicerContext) -> None:
            if self._ending_streams:
                return
            stream = asyncio.ensure_future(answer(request, context))
            self._streams.add(stream)
            try:
                await stream
            except asyncio.CancelledError:
                if not stream.cancelled() or not self._ending_streams:
                    raise  # the call itself was cancelled, not ended by end_streams()
            finally:
                self._streams.discard(stream)

        return endable

    def _observe(
        self, method: str, behavior: Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]],
        deserialize: Callable[[bytes], Any],
    ) -> Callable[[bytes, grpc.aio.ServicerContext], Awaitable[Any]]:
        metrics = self._metrics
        latency, answered = metrics.latency.labels(method), metrics.requests.labels(method, "OK")

        async def observed(raw: bytes, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            metrics.in_flight.inc()
            try:
                request = parse(raw, deserialize, context)
                response = None if request is None else await behavior(request, context)
                code = context.code() or grpc.StatusCode.OK  # a refusal sets its code and returns None
                return response
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


def parse(raw: bytes, deserialize: Callable[[bytes], Any], context: grpc.aio.ServicerContext) -> Any:
    """The request message; None, with the call's status set to INVALID_ARGUMENT, when `raw` is not one."""
    try:
        return deserialize(raw)
    except DecodeError as error:
        reason = str(error)
    rpc.refuse(context, grpc.StatusCode.INVALID_ARGUMENT, f"the request is not valid protobuf: {reason}")
    return None
