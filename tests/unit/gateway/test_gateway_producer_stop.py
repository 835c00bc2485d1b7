"""EventProducer.stop(timeout) against a driver shaped like aiokafka's producer whose broker
is gone: the flush never ends, so stop gives up in time, fails what is held, and leaves no
sender task behind (the gateway stops its producer this way; loopline_core.kafka.producer)."""

from __future__ import annotations

import asyncio
import time

import pytest

from loopline_core.errors import Unavailable
from loopline_core.kafka.producer import EventProducer
from loopline_core.settings import KafkaSettings


class _Accumulator:
    def __init__(self) -> None:
        self.held: list[asyncio.Future[None]] = []

    def fail_all(self, exception: Exception) -> None:
        for future in self.held:
            if not future.done():
                future.set_exception(exception)


class _Sender:
    def __init__(self) -> None:
        self.task = asyncio.create_task(self._routine())

    async def _routine(self) -> None:  # aiokafka's sender retrying a broker that never answers
        while True:
            await asyncio.sleep(0.01)

    async def close(self) -> None:  # as aiokafka: cancel, then await (re-raises the cancellation)
        if not self.task.done():
            self.task.cancel()
            await self.task


class _Client:
    closed = False

    async def close(self) -> None:
        self.closed = True


class _StuckProducer:
    """Like AIOKafkaProducer with Kafka down: stop() waits for a flush that never completes."""

    def __init__(self, hang: bool = True) -> None:
        self._message_accumulator = _Accumulator()
        self._sender: _Sender | None = None
        self.client = _Client()
        self.hang = hang

    async def start(self) -> None:
        self._sender = _Sender()

    async def stop(self) -> None:
        if self.hang:  # as aiokafka: waits on a flush task, which outlives this call's cancellation
            flush = asyncio.ensure_future(asyncio.gather(*self._message_accumulator.held, return_exceptions=True))
            await asyncio.wait([flush])
        assert self._sender is not None
        await asyncio.gather(self._sender.close(), return_exceptions=True)
        await self.client.close()

    async def send(self, topic: str, **_: object) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._message_accumulator.held.append(future)
        return future


async def test_a_stop_that_times_out_fails_held_records_and_leaves_no_sender_task() -> None:
    driver = _StuckProducer()
    producer = EventProducer(KafkaSettings(), service="t", driver=driver)
    await producer.start()
    held = await driver.send("topic")
    began = time.monotonic()
    assert await producer.stop(0.2) is False
    assert time.monotonic() - began < 1.5
    assert driver._sender is not None and driver._sender.task.done()  # nothing lingers until process exit
    assert driver.client.closed
    with pytest.raises(Unavailable, match="before Kafka acknowledged"):
        await held
    assert await producer.stop(0.2) is True  # already stopped: nothing to do


async def test_a_stop_that_flushes_in_time_says_so() -> None:
    driver = _StuckProducer(hang=False)
    producer = EventProducer(KafkaSettings(), service="t", driver=driver)
    await producer.start()
    assert await producer.stop(1.0) is True
    assert driver._sender is not None and driver._sender.task.done() and driver.client.closed


async def test_the_caller_being_cancelled_during_stop_is_not_swallowed() -> None:
    driver = _StuckProducer()
    producer = EventProducer(KafkaSettings(), service="t", driver=driver)
    await producer.start()
    await driver.send("topic")
    stopping = asyncio.create_task(producer.stop(5.0))
    await asyncio.sleep(0.05)
    stopping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopping
    assert driver._sender is not None
    await asyncio.gather(driver._sender.close(), return_exceptions=True)
