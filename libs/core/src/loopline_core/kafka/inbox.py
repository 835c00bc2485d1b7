"""Inbox idempotency: each event's effects happen once per consumer, although
Kafka delivers at least once.

An inbox records the event ids a consumer has processed. ``claim`` opens one unit
of work for an event: it yields ``None`` when the event was already processed
(skip it), otherwise a transaction handle in which the handler makes its side
effects. Leaving the block normally records the id *in the same transaction* as
those effects; an exception rolls both back. Hence:

- crash (or error) before that transaction commits: neither effects nor mark
  exist; the offset was not committed either, so the record is redelivered and
  handled as if for the first time;
- crash after the transaction commits but before the offset commit: the record
  is redelivered, ``claim`` yields ``None``, and the handler does not run again;
- two members handling the same record at once (a rebalance): the second claim
  waits for the first transaction and then sees the mark (PostgreSQL row lock).

The guarantee covers effects made through the yielded handle only. Effects
elsewhere (events sent to Kafka, calls to other services) may repeat after a
crash, so they must be idempotent themselves: send derived event ids
(``derive_event_id``), pass request ids. ``consumer`` names the handler, not the
process: two handlers of one event in one service need two names.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol, TypeVar

from google.protobuf.message import Message

from loopline_core.kafka.handlers import Delivery, Handler

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
M = TypeVar("M", bound=Message)


class Inbox(Protocol[T_co]):
    def claim(self, consumer: str, event_id: str) -> AbstractAsyncContextManager[T_co | None]: ...

    async def seen(self, consumer: str, event_id: str) -> bool: ...


def idempotent(consumer: str, inbox: Inbox[T],
               handler: Callable[[Delivery[M], T], Awaitable[None]]) -> Handler:
    """A consumer handler that runs ``handler(delivery, transaction)`` at most once
    per event id (effects through ``transaction``), and skips redeliveries."""

    async def handle(delivery: Delivery[M]) -> None:
        async with inbox.claim(consumer, delivery.event.id) as transaction:
            if transaction is not None:
                await handler(delivery, transaction)

    return handle  # type: ignore[return-value]


class MemoryTransaction:
    """Stands in for a database transaction: staged effects apply on success only."""

    def __init__(self) -> None:
        self._on_commit: list[Callable[[], None]] = []

    def on_commit(self, effect: Callable[[], None]) -> None:
        self._on_commit.append(effect)

    def _commit(self) -> None:
        for effect in self._on_commit:
            effect()


class InMemoryInbox:
    """For unit tests and in-memory wiring. One lock serialises claims, which also
    keeps two claims of the same event from running at once."""

    def __init__(self) -> None:
        self.processed: set[tuple[str, str]] = set()
        self._lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def claim(self, consumer: str, event_id: str) -> AsyncIterator[MemoryTransaction | None]:
        async with self._lock:
            if (consumer, event_id) in self.processed:
                yield None
                return
            transaction = MemoryTransaction()
            yield transaction
            transaction._commit()
            self.processed.add((consumer, event_id))

    async def seen(self, consumer: str, event_id: str) -> bool:
        return (consumer, event_id) in self.processed
