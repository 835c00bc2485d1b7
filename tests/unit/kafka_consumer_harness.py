"""The in-memory broker set up for the consumer loop's unit tests (a plain module,
not a conftest, so that its name is unique in the test session)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from loopline.events.v1.predictions_pb2 import PredictionLogged

from loopline_core.kafka.cloudevents import EventTypes
from loopline_core.kafka.consumer import EventConsumer
from loopline_core.kafka.handlers import Delivery
from loopline_core.kafka.memory import InMemoryBroker
from loopline_core.kafka.producer import EventProducer, Outgoing
from loopline_core.kafka.topics import PREDICTIONS, dead_letter_topic

SETTINGS_FIELDS = {"max_retries": 3, "retry_backoff_ms": 1, "retry_backoff_max_ms": 4}
DLQ = dead_letter_topic(PREDICTIONS)
GROUP = "test-group"


class SimulatedCrash(BaseException):
    """Stands for the process dying: nothing in the loop may handle it."""


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.002)


class Harness:
    def __init__(self) -> None:
        from loopline_core.settings import KafkaSettings

        self.settings = KafkaSettings(**SETTINGS_FIELDS)
        self.broker = InMemoryBroker()
        self.producer = EventProducer(self.settings, service="test", driver=self.broker.producer())

    async def publish(self, *ids: str) -> None:
        await self.producer.start()
        await self.producer.send_batch(PREDICTIONS, [
            Outgoing(pid, PredictionLogged(prediction_id=pid), event_id=f"e-{pid}") for pid in ids])

    def consumer(self, handler: Callable[[Delivery], Awaitable[None]], **kwargs: object) -> EventConsumer:
        return EventConsumer(self.settings, group_id=GROUP, topics=[PREDICTIONS], types=EventTypes(PredictionLogged),
                             handler=handler, dead_letters=self.producer,
                             driver=self.broker.consumer(PREDICTIONS, group_id=GROUP), **kwargs)

    def committed(self) -> int:
        return sum(self.broker.committed(GROUP, PREDICTIONS, p) or 0 for p in range(6))

    def dead_letters(self) -> list[dict[str, bytes]]:
        return [dict(r.headers) for r in self.broker.records(DLQ)]


async def run_until(consumer: EventConsumer, predicate: Callable[[], bool]) -> None:
    task = asyncio.create_task(consumer.run())
    try:
        await eventually(lambda: predicate() or task.done())
    finally:
        consumer.stop()
        await asyncio.wait_for(task, 5)


@pytest.fixture
async def harness() -> Harness:
    return Harness()
