"""What both gRPC services share: refused requests become statuses, and model runs respect deadlines."""
from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import numpy as np

from mnist_edge.serve.batcher import Runner
from mnist_edge.serve.errors import RequestError


def refusals_as_status(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Answers a RequestError raised by a servicer method with its status code and message."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await method(self, request, context)
        except RequestError as error:
            return refuse(context, error.code, str(error))

    return wrapper


def refuse(context: grpc.aio.ServicerContext, code: grpc.StatusCode, details: str) -> None:
    """Ends the call with `code` without raising: gRPC discards the response of a call whose code is not OK.

    context.abort() raises an exception that gRPC keeps in a reference cycle with the call's state, and its
    traceback holds the frames that hold the request: a refusal would then live until the cyclic garbage
    collector runs, and a loop of small requests that parse into large messages (millions of empty images)
    piles them up by the gigabyte. Refused this way, each request is freed as soon as its call ends.
    """
    context.set_code(code)
    context.set_details(details)


async def infer(runner: Runner, images: np.ndarray, context: grpc.aio.ServicerContext) -> np.ndarray:
    """Runs the model for one call, passing the call's deadline on so that expired work is skipped."""
    remaining = context.time_remaining()
    deadline = None if remaining is None else asyncio.get_running_loop().time() + remaining
    return await runner.infer(images, deadline)
