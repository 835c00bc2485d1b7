"""The producer against the in-memory broker: records, ids, trace headers, errors."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from loopline.events.v1.predictions_pb2 import PredictionLogged
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from loopline_core.errors import InvalidArgument, Unavailable
from loopline_core.kafka.cloudevents import EventTypes, decode
from loopline_core.kafka.memory import InMemoryBroker
from loopline_core.kafka.producer import MAX_BATCH_BYTES, EventProducer, Outgoing, kafka_producer
from loopline_core.kafka.topics import PREDICTIONS
from loopline_core.settings import KafkaSettings

MOMENT = datetime(2026, 1, 2, tzinfo=UTC)


@pytest.fixture
async def producer_on() -> tuple[EventProducer, InMemoryBroker]:
    broker = InMemoryBroker()
    producer = EventProducer(KafkaSettings(), service="serving-gateway", driver=broker.producer(),
                             clock=lambda: MOMENT)
    await producer.start()
    return producer, broker


async def test_send_publishes_a_keyed_cloudevent_and_returns_its_id(producer_on) -> None:
    producer, broker = producer_on
    event_id = await producer.send(PREDICTIONS, "p-1", PredictionLogged(prediction_id="p-1"), subject="churn/3")
    [record] = broker.records(PREDICTIONS)
    assert record.key == b"p-1"
    event = decode(record.value, record.headers, EventTypes(PredictionLogged))
    assert (event.id, event.source, event.subject, event.time) == (event_id, "/loopline/serving-gateway",
                                                                   "churn/3", MOMENT)
    assert event.data == PredictionLogged(prediction_id="p-1")


async def test_a_given_event_id_is_kept(producer_on) -> None:
    producer, broker = producer_on
    assert await producer.send(PREDICTIONS, "p-1", PredictionLogged(), event_id="derived-1") == "derived-1"
    assert dict(broker.records(PREDICTIONS)[0].headers)["ce_id"] == b"derived-1"


async def test_send_batch_keeps_order_per_key(producer_on) -> None:
    producer, broker = producer_on
    items = [Outgoing("p-1", PredictionLogged(prediction_id="p-1", latency_us=n)) for n in range(5)]
    ids = await producer.send_batch(PREDICTIONS, items)
    records = broker.records(PREDICTIONS)
    assert [dict(r.headers)["ce_id"].decode() for r in records] == ids
    assert [PredictionLogged.FromString(r.value).latency_us for r in records] == [0, 1, 2, 3, 4]


async def test_a_large_batch_lets_the_event_loop_through_and_keeps_its_order(producer_on, loop_turns) -> None:
    from loopline_core.kafka.producer import YIELD_EVERY

    producer, broker = producer_on
    before = loop_turns.count
    items = [Outgoing("p-1", PredictionLogged(latency_us=n)) for n in range(YIELD_EVERY * 3)]
    await producer.send_batch(PREDICTIONS, items)
    assert loop_turns.count - before >= 3  # the in-memory driver never yields on its own
    assert [PredictionLogged.FromString(r.value).latency_us for r in broker.records(PREDICTIONS)] == list(
        range(YIELD_EVERY * 3))


async def test_each_record_carries_the_context_of_its_send_span(producer_on, spans) -> None:
    producer, broker = producer_on
    spans.clear()
    with trace.get_tracer("test").start_as_current_span("request") as request:
        await producer.send(PREDICTIONS, "p-1", PredictionLogged())
    send = next(s for s in spans.get_finished_spans() if s.name == f"send {PREDICTIONS}")
    assert send.kind == SpanKind.PRODUCER
    assert send.parent.span_id == request.get_span_context().span_id
    assert send.attributes["messaging.destination.name"] == PREDICTIONS
    traceparent = dict(broker.records(PREDICTIONS)[0].headers)["traceparent"].decode()
    assert traceparent.split("-")[1:3] == [f"{send.context.trace_id:032x}", f"{send.context.span_id:016x}"]


async def test_a_batch_is_sent_in_one_span_whose_context_every_record_carries(producer_on, spans) -> None:
    producer, broker = producer_on
    spans.clear()
    with trace.get_tracer("test").start_as_current_span("request") as request:
        ids = await producer.send_batch(PREDICTIONS, [Outgoing(f"p-{n}", PredictionLogged()) for n in range(5)])
    [send] = [s for s in spans.get_finished_spans() if s.name == f"send {PREDICTIONS}"]
    assert send.parent.span_id == request.get_span_context().span_id
    assert send.attributes["messaging.batch.message_count"] == 5
    records = broker.records(PREDICTIONS)
    assert sorted(dict(r.headers)["ce_id"].decode() for r in records) == sorted(ids)
    for record in records:
        traceparent = dict(record.headers)["traceparent"].decode()
        assert traceparent.split("-")[1:3] == [f"{send.context.trace_id:032x}", f"{send.context.span_id:016x}"]
        assert decode(record.value, record.headers, EventTypes(PredictionLogged)).time == MOMENT


async def test_an_empty_batch_sends_nothing(producer_on, spans) -> None:
    producer, broker = producer_on
    spans.clear()
    assert await producer.send_batch(PREDICTIONS, []) == []
    assert broker.records(PREDICTIONS) == [] and spans.get_finished_spans() == ()


def test_the_partitioner_places_keys_as_the_java_client_does() -> None:
    from aiokafka.partitioner import DefaultPartitioner

    from loopline_core.kafka.partitioner import key_partitioner

    partitions = list(range(6))
    for key in (b"p-1", b"model-a", b"0f3c9a52-7d1e-4b8e-9a51-1f2e3d4c5b6a", b""):
        assert key_partitioner(key, partitions, partitions) == DefaultPartitioner()(key, partitions, partitions)
        assert key_partitioner(key, partitions, partitions) == key_partitioner(key, partitions, partitions)
    assert key_partitioner(None, partitions, [2]) == 2


async def test_send_before_start_is_unavailable() -> None:
    producer = EventProducer(KafkaSettings(), service="t", driver=InMemoryBroker().producer())
    with pytest.raises(Unavailable, match="not started"):
        await producer.send(PREDICTIONS, "k", PredictionLogged())


async def test_driver_failures_become_the_taxonomy(producer_on) -> None:
    producer, broker = producer_on
    with pytest.raises(Unavailable, match="does not exist"):
        await producer.send("no.such.topic", "k", PredictionLogged())
    broker.unavailable = True
    with pytest.raises(Unavailable, match="KafkaConnectionError"):
        await producer.send(PREDICTIONS, "k", PredictionLogged())


async def test_a_record_that_can_never_fit_is_invalid() -> None:
    from aiokafka.errors import MessageSizeTooLargeError

    class TooLarge:
        async def start(self) -> None: ...
        async def stop(self) -> None: ...
        async def send(self, *args: object, **kwargs: object) -> None:
            raise MessageSizeTooLargeError()

    producer = EventProducer(KafkaSettings(), service="t", driver=TooLarge())  # type: ignore[arg-type]
    await producer.start()
    with pytest.raises(InvalidArgument, match="too large"):
        await producer.send(PREDICTIONS, "k", PredictionLogged())


async def test_the_real_driver_is_idempotent_with_acks_all() -> None:
    driver = kafka_producer(KafkaSettings(bootstrap_servers="127.0.0.1:1"), client_id="t")
    assert driver._txn_manager is not None  # created only with enable_idempotence=True
    assert driver.client._client_id == "t"
    assert driver._sender._acks == -1
    assert driver._message_accumulator._batch_size == MAX_BATCH_BYTES


def test_murmur2_is_kafkas() -> None:
    import random as random_module

    from aiokafka.partitioner import murmur2

    from loopline_core.kafka.partitioner import _murmur2_aiokafka, _murmur2_words, murmur2_of

    # Kafka's own test vectors (clients' UtilsTest), as signed Java ints
    for text, java in [(b"21", -973932308), (b"foobar", -790332482), (b"a-little-bit-long-string", -985981536),
                       (b"a-little-bit-longer-string", -1486304829),
                       (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971), (b"abc", 479470107)]:
        assert murmur2_of(text) == java & 0xFFFFFFFF
    rng = random_module.Random(7)
    for length in [*range(41), 100, 1000]:
        for _ in range(20):
            data = rng.randbytes(length)
            assert _murmur2_words(data) == _murmur2_aiokafka(data) == murmur2(data) & 0xFFFFFFFF


@contextlib.asynccontextmanager
async def _reports_of_unretrieved_futures() -> AsyncIterator[list[str]]:
    """What the event loop reports (asyncio logs "Future exception was never retrieved" through it),
    with a garbage collection at the end so that dropped futures are reported."""
    loop = asyncio.get_running_loop()
    reported: list[str] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: reported.append(str(context.get("message"))))
    try:
        yield reported
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)


class _StallingDriver:
    """aiokafka's batch interface: builders of two records; the first batch is accepted (its
    acknowledgement a shielded future, as aiokafka's), the second waits for room forever."""

    def __init__(self) -> None:
        self.acks: list[asyncio.Future[None]] = []

    async def start(self) -> None: ...

    async def partitions_for(self, topic: str) -> set[int]:
        return {0}

    def create_batch(self) -> Any:
        class Builder:
            records = 0

            def append(self, **_: object) -> object | None:
                if self.records == 2:
                    return None
                self.records += 1
                return self

        return Builder()

    async def send_batch(self, builder: object, topic: str, partition: int) -> asyncio.Future[None]:
        if self.acks:
            await asyncio.Event().wait()
        self.acks.append(asyncio.get_running_loop().create_future())
        return asyncio.shield(self.acks[-1])


async def test_acknowledgements_given_up_with_a_cancelled_send_are_not_reported_unretrieved() -> None:
    async with _reports_of_unretrieved_futures() as reported:
        driver = _StallingDriver()
        producer = EventProducer(KafkaSettings(), service="serving-gateway", driver=driver)  # type: ignore[arg-type]
        await producer.start()
        items = [Outgoing("p-1", PredictionLogged(prediction_id="p-1", latency_us=n)) for n in range(5)]
        sending = asyncio.create_task(producer.send_batch(PREDICTIONS, items))
        while not driver.acks:
            await asyncio.sleep(0)
        sending.cancel()  # shutdown gives up on the flush while the driver has the first batch
        with pytest.raises(asyncio.CancelledError):
            await sending
        driver.acks[0].set_exception(Unavailable("the producer stopped before Kafka acknowledged this record"))
        await asyncio.sleep(0)
        del sending
    assert reported == []

async def test_batches_failed_when_a_stop_gives_up_are_not_reported_unretrieved() -> None:
    from aiokafka.producer.message_accumulator import MessageAccumulator
    from aiokafka.structs import TopicPartition

    from loopline_core.kafka.producer import _abandon

    async with _reports_of_unretrieved_futures() as reported:
        class Driver:  # what _abandon tears down of an aiokafka producer: its accumulator
            _message_accumulator = MessageAccumulator(None, 16384, 0, 30)

        accumulator = Driver._message_accumulator
        for partition in range(3):
            builder = accumulator.create_builder()
            builder.append(key=b"k", value=b"v", timestamp=None)
            await accumulator.add_batch(builder, TopicPartition(PREDICTIONS, partition), 1)
        accumulator._pop_batch(TopicPartition(PREDICTIONS, 0))  # noqa: SLF001 - one in flight, as the sender takes them
        await _abandon(Driver(), 0.1)  # type: ignore[arg-type]
        del Driver, accumulator
    assert reported == []
