"""The transport-neutral error taxonomy.

Handlers and adapters raise these; each edge (HTTP, gRPC, Kafka) translates them
with one small table (see ``loopline_core.edges``). Driver exceptions are turned
into these by the adapter that sees them, so no edge ever sees asyncpg or
aiokafka errors.
"""

from __future__ import annotations


class LooplineError(Exception):
    """Base of every error a Loopline handler may raise on purpose."""

    #: Whether the same call may succeed if simply tried again later.
    retryable: bool = False

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class InvalidArgument(LooplineError):
    """The request itself is wrong; repeating it will not help."""


class NotFound(LooplineError):
    """The thing the request names does not exist."""


class AlreadyExists(LooplineError):
    """A create collided with an existing thing of the same identity."""


class FailedPrecondition(LooplineError):
    """The system is not in a state that allows this (stale revision, gate refused)."""


class Unauthenticated(LooplineError):
    """No valid credentials were presented."""


class PermissionDenied(LooplineError):
    """The caller is known but lacks the role this action needs."""


class Unavailable(LooplineError):
    """A dependency is down or overloaded; retry with backoff."""

    retryable = True


class MalformedEvent(LooplineError):
    """An event could not be decoded or violates its schema: dead-letter it."""
