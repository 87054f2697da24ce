"""The two kinds of failure the server reports to people instead of as tracebacks."""
from __future__ import annotations

import grpc


class StartupError(Exception):
    """The server cannot start; the message is one sentence saying why."""


class RequestError(Exception):
    """A request the server refuses; `code` is the gRPC status the client gets, with the message."""

    code: grpc.StatusCode


class InvalidInput(RequestError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class ModelNotFound(RequestError):
    code = grpc.StatusCode.NOT_FOUND


class DeadlineExpired(RequestError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Overloaded(RequestError):
    """Too many images wait for the model already (--max-queue); the client may retry later."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class ServerFailed(Exception):
    """The server stopped because part of it failed (a worker of --workers N); the message says which."""
