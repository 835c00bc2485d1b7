"""The prediction log's bounded buffer: drops are counted exactly, and it catches up."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Iterable
from pathlib import Path

from gateway_fakes import request, wide_served
from tritonclient.grpc import service_pb2 as pb

from loopline_core.errors import Unavailable
from loopline_core.kafka.producer import EventProducer, Outgoing

from loopline_serving_gateway.bootstrap import build
from loopline_serving_gateway.handlers.prediction_events import Served
from loopline_serving_gateway.handlers.prediction_log import PredictionLog
from loopline_serving_gateway.settings import GatewaySettings, PredictionLogSettings


class FlakyKafka:
    def __init__(self) -> None:
        self.down = asyncio.Event()
        self.ids: list[str] = []

    async def send_batch(self, topic: str, items: Iterable[Outgoing]) -> list[str]:
        if self.down.is_set():
            raise Unavailable("broker not reachable")
        ids = [i.event_id or "" for i in items]
        self.ids.extend(ids)
        return ids


def _served(n: int, rows: int = 1) -> Served:
    response = pb.ModelInferResponse()
    response.outputs.add(name="prediction", datatype="FP32", shape=[rows, 1])
    response.raw_output_contents.append(b"\x00\x00\x80\x3f" * rows)
    return Served(f"id-{n}", "iris", 1, 1, "iris.v1", request("iris", rows=rows), response, 10, 0, rows)


async def test_while_kafka_is_down_the_buffer_is_bounded_and_drops_are_counted() -> None:
    kafka = FlakyKafka()
    dropped: list[int] = []
    log = PredictionLog(kafka, PredictionLogSettings(buffer_events=50, batch_events=10, flush_interval_ms=1,
                                                     retry_backoff_ms=1), on_drop=dropped.append)
    runner = asyncio.create_task(log.run())
    kafka.down.set()
    for n in range(200):
        log.record(_served(n))
        await asyncio.sleep(0)
    kafka.down.clear()
    async with asyncio.timeout(5):
        while log.buffered:
            await asyncio.sleep(0.001)
        await log.flush()
    runner.cancel()
    assert log.dropped == sum(dropped) > 0
    assert len(set(kafka.ids)) + log.dropped == 200  # everything not dropped arrived
    assert len(set(kafka.ids)) >= 50


async def test_a_batch_larger_than_the_room_left_is_dropped_whole() -> None:
    log = PredictionLog(FlakyKafka(), PredictionLogSettings(buffer_events=4))
    log.record(_served(1, rows=3))
    log.record(_served(2, rows=2))
    assert (log.buffered, log.dropped) == (3, 2)


async def test_a_send_cancelled_at_shutdown_is_sent_by_the_final_flush() -> None:
    kafka = FlakyKafka()
    kafka.down.set()  # the background loop takes the batch and keeps retrying it
    log = PredictionLog(kafka, PredictionLogSettings(batch_events=10, flush_interval_ms=1, retry_backoff_ms=1))
    runner = asyncio.create_task(log.run())
    for n in range(3):
        log.record(_served(n))
    async with asyncio.timeout(5):
        while log.buffered:  # taken from the buffer, in hand
            await asyncio.sleep(0.001)
    runner.cancel()  # shutdown cancels the loop mid-send
    await asyncio.gather(runner, return_exceptions=True)
    kafka.down.clear()
    await log.flush()
    assert len(set(kafka.ids)) == 3 and log.sent == 3


async def test_at_shutdown_what_kafka_never_acknowledged_is_counted_as_dropped() -> None:
    kafka = FlakyKafka()
    kafka.down.set()
    dropped: list[int] = []
    log = PredictionLog(kafka, PredictionLogSettings(batch_events=2, flush_interval_ms=1, retry_backoff_ms=1),
                        on_drop=dropped.append)
    runner = asyncio.create_task(log.run())
    for n in range(5):
        log.record(_served(n))
    async with asyncio.timeout(5):
        while log.buffered == 5:  # two taken into hand, three still buffered
            await asyncio.sleep(0.001)
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(log.flush(), 0.05)  # Kafka stays down for the whole grace period
    assert log.abandon() == 5
    assert (log.dropped, sum(dropped), log.buffered, log.sent) == (5, 5, 0, 0)
    assert log.abandon() == 0  # nothing left, nothing counted twice


class _UnreachableBroker:
    """An aiokafka producer whose broker is gone: sends are never acknowledged, and like
    an idempotent producer holding records, it never finishes stopping."""

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        await asyncio.Event().wait()

    async def send(self, topic: str, value: bytes | None = None, key: bytes | None = None,
                   partition: int | None = None, timestamp_ms: int | None = None,
                   headers: object = None) -> asyncio.Future[object]:
        return asyncio.get_running_loop().create_future()


async def test_the_gateway_stops_within_its_grace_period_while_kafka_is_down(tmp_path: Path) -> None:
    settings = GatewaySettings(run_dir=tmp_path, shutdown_grace_s=0.3,
                               prediction_log=PredictionLogSettings(flush_interval_ms=1))
    producer = EventProducer(settings.kafka, service="gateway-test", driver=_UnreachableBroker())
    gateway = build(settings, registry=object(), producer=producer, consume_events=False)  # type: ignore[arg-type]
    plog = gateway.prediction_log
    assert plog is not None
    kafka = next(c for c in gateway.host.components if c.name == "kafka-producer")
    assert kafka.start is not None and kafka.stop is not None
    await kafka.start()
    runner = asyncio.create_task(plog.run())
    for n in range(3):
        plog.record(_served(n))
    async with asyncio.timeout(5):
        while plog.buffered:
            await asyncio.sleep(0.001)
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    plog.record(_served(3))
    began = time.monotonic()
    async with asyncio.timeout(5):
        await kafka.stop()
    assert time.monotonic() - began < 2
    assert plog.dropped == 4
    assert gateway.metrics.registry.get_sample_value("gateway_prediction_log_dropped_total") == 4


async def test_a_batch_is_built_in_slices_and_a_cancel_while_building_loses_nothing(loop_turns) -> None:
    from loopline_serving_gateway.handlers import prediction_log

    kafka = FlakyKafka()
    log = PredictionLog(kafka, PredictionLogSettings(batch_events=1000, flush_interval_ms=1))
    total = prediction_log.SLICE * 3 + 1
    for n in range(total):
        log.record(_served(n))
    builder = asyncio.create_task(log._build())  # noqa: SLF001
    await asyncio.sleep(0)  # the builder has built its first slice and yielded
    builder.cancel()
    await asyncio.gather(builder, return_exceptions=True)
    assert log.buffered == total  # nothing left the buffer
    before = loop_turns.count
    built = await log._build()  # noqa: SLF001
    assert [event.key for event in built] == [f"id-{n}" for n in range(total)]
    assert loop_turns.count - before >= 3 and log.buffered == 0
    await log.flush()
    assert kafka.ids == []  # what _build returned is the caller's to send; the buffer is empty


class RefusingKafka(FlakyKafka):
    """Refuses (as Kafka does a record over its limit) any batch holding one of ``refused``."""

    def __init__(self, refused: set[str]) -> None:
        super().__init__()
        self.refused = refused
        self.keys: list[str] = []

    async def send_batch(self, topic: str, items: Iterable[Outgoing]) -> list[str]:
        items = list(items)
        if any(item.key in self.refused for item in items):
            from loopline_core.errors import InvalidArgument

            raise InvalidArgument("sending to loopline.predictions.v1: record too large", field="value")
        self.keys.extend(item.key for item in items)
        return await super().send_batch(topic, items)


async def test_an_event_kafka_refuses_is_dropped_and_counted_and_the_log_goes_on() -> None:
    kafka = RefusingKafka({"id-3"})
    dropped: list[int] = []
    log = PredictionLog(kafka, PredictionLogSettings(batch_events=10, flush_interval_ms=1, retry_backoff_ms=1),
                        on_drop=dropped.append)
    runner = asyncio.create_task(log.run())
    try:
        for n in range(6):
            log.record(_served(n))
        async with asyncio.timeout(5):
            while log.sent < 5:
                await asyncio.sleep(0.001)
        for n in range(6, 9):  # later batches go as before, whole
            log.record(_served(n))
        async with asyncio.timeout(5):
            while log.sent < 8:
                await asyncio.sleep(0.001)
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    assert log.dropped == sum(dropped) == 1 and log.sent == 8 and log.buffered == 0
    assert sorted(kafka.keys) == sorted(f"id-{n}" for n in range(9) if n != 3)


async def test_the_buffer_is_bounded_in_tensor_bytes_too_and_frees_them_once_logged() -> None:
    kafka = FlakyKafka()
    kafka.down.set()
    log = PredictionLog(kafka, PredictionLogSettings(buffer_bytes=1 << 20, batch_events=10, flush_interval_ms=1,
                                                     retry_backoff_ms=1))
    big = 300 * 1024  # three fit in 1 MiB, the fourth does not
    for n in range(5):
        log.record(wide_served(n, 8) if n == 4 else dataclasses.replace(wide_served(n, 8), data_bytes=big))
    assert (log.buffered, log.dropped) == (4, 1)  # the small one still fit
    runner = asyncio.create_task(log.run())
    kafka.down.clear()
    try:
        async with asyncio.timeout(5):
            while log.sent < 4:
                await asyncio.sleep(0.001)
        for n in range(5, 8):  # room again once logged
            log.record(dataclasses.replace(wide_served(n, 8), data_bytes=big))
        assert log.dropped == 1
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
