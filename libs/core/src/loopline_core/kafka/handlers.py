"""What a consumer hands to application code, and routing by event type."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from google.protobuf.message import Message

from loopline_core.kafka.cloudevents import CloudEvent, EventTypes, type_of

M = TypeVar("M", bound=Message)


@dataclass(frozen=True)
class Delivery(Generic[M]):
    """One decoded record: the event and where it came from."""

    topic: str
    partition: int
    offset: int
    key: str | None
    event: CloudEvent[M]
    #: The record's headers as received (trace context: ``tracing.context_of``).
    headers: tuple[tuple[str, bytes], ...] = ()


Handler = Callable[[Delivery[Message]], Awaitable[None]]
#: Receives the decoded records of one polled partition batch, in offset order.
BatchHandler = Callable[[list[Delivery[Message]]], Awaitable[None]]


class EventRouter:
    """Calls the handler registered for each event's type (``on_<event>`` functions).

    Its ``types`` are exactly the registered classes, so the consumer decodes what
    some handler accepts and dead-letters anything else.
    """

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self._classes: list[type[Message]] = []

    def on(self, message_class: type[M], handler: Callable[[Delivery[M]], Awaitable[None]]) -> EventRouter:
        name = type_of(message_class)
        if name in self._handlers:
            raise ValueError(f"a handler for {name} is already registered")
        self._handlers[name] = handler  # type: ignore[assignment]
        self._classes.append(message_class)
        return self

    def ignore(self, *message_classes: type[Message]) -> EventRouter:
        """Event types of the topic this consumer has no use for: decoded and skipped,
        not dead-lettered (they are valid events, only not this consumer's business)."""
        for message_class in message_classes:
            self.on(message_class, _skip)
        return self

    @property
    def types(self) -> EventTypes:
        return EventTypes(*self._classes)

    async def __call__(self, delivery: Delivery[Message]) -> None:
        await self._handlers[delivery.event.type](delivery)


async def _skip(delivery: Delivery[Message]) -> None:
    return None
