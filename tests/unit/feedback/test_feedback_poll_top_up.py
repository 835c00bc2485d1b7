"""The feedback collector's consumer tops up each poll (EventConsumer(poll_top_up_ms=)):
records that arrived while the last batch was handled join the next batch instead of
waiting one more batch. On the in-memory broker, with a driver that, like aiokafka,
returns one fetch's worth of records per call."""

from __future__ import annotations

import asyncio

from loopline.events.v1.predictions_pb2 import PredictionLogged

from loopline_core.kafka.cloudevents import EventTypes
from loopline_core.kafka.consumer import EventConsumer
from loopline_core.kafka.handlers import Delivery
from loopline_core.kafka.memory import InMemoryBroker, MemoryConsumer
from loopline_core.kafka.producer import EventProducer, Outgoing
from loopline_core.kafka.topics import PREDICTIONS
from loopline_core.settings import KafkaSettings

GROUP = "top-up"


class OneFetchPerCall:
    """Like aiokafka's consumer: each getmany hands over at most one fetch (``fetch`` records)."""

    def __init__(self, inner: MemoryConsumer, fetch: int) -> None:
        self.inner, self.fetch = inner, fetch
        self.asked: list[tuple[int, int | None]] = []

    async def start(self) -> None:
        await self.inner.start()

    async def stop(self) -> None:
        await self.inner.stop()

    async def getmany(self, *partitions, timeout_ms: int = 0, max_records: int | None = None):  # type: ignore[no-untyped-def]
        self.asked.append((timeout_ms, max_records))
        return await self.inner.getmany(timeout_ms=timeout_ms, max_records=min(self.fetch, max_records or self.fetch))

    async def commit(self, offsets=None) -> None:  # type: ignore[no-untyped-def]
        await self.inner.commit(offsets)


async def run(top_up_ms: int) -> tuple[list[list[str]], OneFetchPerCall]:
    settings = KafkaSettings(max_retries=1, retry_backoff_ms=1, retry_backoff_max_ms=2)
    broker = InMemoryBroker()
    producer = EventProducer(settings, service="test", driver=broker.producer())
    await producer.start()
    await producer.send_batch(PREDICTIONS, [
        Outgoing("one-key", PredictionLogged(prediction_id=pid), event_id=f"e-{pid}") for pid in "abcde"])
    calls: list[list[str]] = []

    async def handle(batch: list[Delivery]) -> None:
        calls.append([d.event.data.prediction_id for d in batch])

    driver = OneFetchPerCall(broker.consumer(PREDICTIONS, group_id=GROUP), fetch=2)
    consumer = EventConsumer(settings, group_id=GROUP, topics=[PREDICTIONS], types=EventTypes(PredictionLogged),
                             batch_handler=handle, dead_letters=producer, driver=driver, max_records=4,
                             poll_top_up_ms=top_up_ms)
    task = asyncio.create_task(consumer.run())
    async with asyncio.timeout(5):
        while sum(broker.committed(GROUP, PREDICTIONS, p) or 0 for p in range(6)) < 5:
            await asyncio.sleep(0.002)
    consumer.stop()
    await asyncio.wait_for(task, 5)
    return calls, driver


async def test_a_topped_up_poll_takes_what_came_since_in_order_up_to_max_records() -> None:
    calls, driver = await run(top_up_ms=7)
    assert calls == [["a", "b", "c", "d"], ["e"]]
    # the top-up asks for the room left (4 - 2), briefly
    assert driver.asked[:2] == [(1000, 4), (7, 2)]


async def test_without_a_top_up_each_poll_is_one_fetch() -> None:
    calls, driver = await run(top_up_ms=0)
    assert calls == [["a", "b"], ["c", "d"], ["e"]]
    assert all(timeout == 1000 for timeout, _ in driver.asked)
