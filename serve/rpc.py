"""What both gRPC services share: refused requests become statuses, and model runs respect deadlines."""
from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import numpy as np

from serve.batcher import Runner
from serve.errors import RequestError


def refusals_as_status(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Answers a RequestError raised by a servicer method with its status code and message."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await method(self, request, context)
        except RequestError as error:
            await context.abort(error.code, str(error))

    return wrapper


async def infer(runner: Runner, images: np.ndarray, context: grpc.aio.ServicerContext) -> np.ndarray:
    """Runs the model for one call, passing the call's deadline on so that expired work is skipped."""
    remaining = context.time_remaining()
    deadline = None if remaining is None else asyncio.get_running_loop().time() + remaining
    return await runner.infer(images, deadline)
