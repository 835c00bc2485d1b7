"""The event layer on the real broker: round trip with CloudEvents headers and trace
context, a poison record dead-lettered while the consumer goes on, and a retryable
error retried until it succeeds.

Topics are the session's catalogue topics, shared with other tests; each test uses
its own consumer group and its own event source, and ignores everything else.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from loopline.events.v1.drift_pb2 import DriftDetected
from loopline.events.v1.predictions_pb2 import LabeledPrediction, PredictionLogged
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from loopline_core.errors import Unavailable
from loopline_core.kafka.cloudevents import EventTypes
from loopline_core.kafka.consumer import EventConsumer
from loopline_core.kafka.handlers import Delivery
from loopline_core.kafka.producer import EventProducer
from loopline_core.kafka.topics import DRIFT, LABELED, PREDICTIONS, all_topics, dead_letter_topic
from loopline_core.settings import KafkaSettings

PARTITIONS = {spec.name: spec.partitions for spec in all_topics()}


@pytest.fixture
def settings(kafka_bootstrap: str) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=kafka_bootstrap, max_retries=3, retry_backoff_ms=20,
                         retry_backoff_max_ms=200)


@pytest.fixture
async def producer(settings: KafkaSettings) -> AsyncIterator[EventProducer]:
    producer = EventProducer(settings, service=f"test-{uuid.uuid4().hex[:8]}")
    await producer.start()
    yield producer
    await producer.stop()


async def eventually(predicate: Callable[[], Awaitable[bool]] | Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = predicate()
        if await result if asyncio.iscoroutine(result) else result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not reached within {timeout}s")
        await asyncio.sleep(0.05)


@asynccontextmanager
async def consuming(consumer: EventConsumer) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(consumer.run())
    try:
        yield task
    finally:
        consumer.stop()
        await asyncio.wait_for(task, 30)


HandlerFn = Callable[[Delivery], Awaitable[None]]


def own(producer: EventProducer, handler: HandlerFn) -> HandlerFn:
    """Only this test's events reach ``handler``; other tests' records are skipped."""

    async def handle(delivery: Delivery) -> None:
        if delivery.event.source == producer.source:
            await handler(delivery)

    return handle


async def read_topic(bootstrap: str, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Everything currently in ``topic``, read without a consumer group."""
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await reader.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS[topic])]
        reader.assign(partitions)
        await reader.seek_to_beginning(*partitions)
        end = await reader.end_offsets(partitions)
        records: list[ConsumerRecord[bytes, bytes]] = []
        while [tp for tp in partitions if await reader.position(tp) < end[tp]]:
            for batch in (await reader.getmany(timeout_ms=1000)).values():
                records.extend(batch)
        return records
    finally:
        await reader.stop()


def group(name: str) -> str:
    return f"test-{name}-{uuid.uuid4().hex[:8]}"


async def test_round_trip_with_cloudevents_headers_and_trace_context(
    settings: KafkaSettings, producer: EventProducer, spans: InMemorySpanExporter, kafka_bootstrap: str
) -> None:
    spans.clear()
    prediction_id = str(uuid.uuid4())
    with trace.get_tracer("test").start_as_current_span("predict") as request:
        event_id = await producer.send(PREDICTIONS, prediction_id,
                                       PredictionLogged(prediction_id=prediction_id, model="churn", version=3),
                                       subject="churn/3")
    received: list[tuple[Delivery, trace.SpanContext]] = []

    async def on_prediction_logged(delivery: Delivery) -> None:
        received.append((delivery, trace.get_current_span().get_span_context()))

    consumer = EventConsumer(settings, group_id=group("roundtrip"), topics=[PREDICTIONS],
                             types=EventTypes(PredictionLogged), handler=own(producer, on_prediction_logged),
                             dead_letters=producer)
    async with consuming(consumer):
        await eventually(lambda: len(received) == 1)

    delivery, handler_span = received[0]
    assert delivery.key == prediction_id and delivery.event.id == event_id
    assert delivery.event.type == "loopline.events.v1.PredictionLogged"
    assert delivery.event.subject == "churn/3" and delivery.event.source == producer.source
    assert delivery.event.data.model == "churn"

    [record] = [r for r in await read_topic(kafka_bootstrap, PREDICTIONS)
                if dict(r.headers).get("ce_id") == event_id.encode()]
    headers = dict(record.headers)
    assert record.key == prediction_id.encode()
    assert headers["ce_specversion"] == b"1.0" and headers["content-type"] == b"application/protobuf"
    assert headers["ce_source"] == producer.source.encode() and headers["ce_subject"] == b"churn/3"
    assert headers["ce_time"].endswith(b"Z")

    [send] = [s for s in spans.get_finished_spans() if s.name == f"send {PREDICTIONS}"
              and s.attributes.get("messaging.message.id") == event_id]
    [process] = [s for s in spans.get_finished_spans() if s.name == f"process {PREDICTIONS}"
                 and s.attributes.get("messaging.message.id") == event_id]
    assert send.kind == SpanKind.PRODUCER and process.kind == SpanKind.CONSUMER
    assert process.context.trace_id == send.context.trace_id == request.get_span_context().trace_id
    assert process.parent.span_id == send.context.span_id
    assert handler_span == process.context
    assert headers["traceparent"].split(b"-")[1:3] == [
        f"{send.context.trace_id:032x}".encode(), f"{send.context.span_id:016x}".encode()]


async def test_a_poison_record_is_dead_lettered_and_the_consumer_goes_on(
    settings: KafkaSettings, producer: EventProducer, kafka_bootstrap: str
) -> None:
    key = f"poison-{uuid.uuid4()}"
    raw = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await raw.start()
    try:
        poison_headers = [("ce_specversion", b"1.0"), ("ce_id", b"p"), ("x-origin", b"test")]
        await raw.send_and_wait(LABELED, value=b"not protobuf", key=key.encode(), headers=poison_headers)
    finally:
        await raw.stop()
    good_id = await producer.send(LABELED, key, LabeledPrediction(label_delay_ms=5))
    handled: list[str] = []

    async def on_labeled_prediction(delivery: Delivery) -> None:
        handled.append(delivery.event.id)

    name = group("poison")
    consumer = EventConsumer(settings, group_id=name, topics=[LABELED], types=EventTypes(LabeledPrediction),
                             handler=own(producer, on_labeled_prediction), dead_letters=producer)
    async with consuming(consumer):
        await eventually(lambda: handled == [good_id])

    [dead] = [r for r in await read_topic(kafka_bootstrap, dead_letter_topic(LABELED))
              if r.key == key.encode() and dict(r.headers).get("dlq_consumer_group") == name.encode()]
    assert dead.value == b"not protobuf"
    assert list(dead.headers[:3]) == poison_headers
    headers = dict(dead.headers)
    assert headers["dlq_error_type"] == b"loopline_core.errors.MalformedEvent"
    assert b"required header ce_source is missing" in headers["dlq_reason"]
    assert headers["dlq_source_topic"] == LABELED.encode()
    assert {"dlq_source_partition", "dlq_source_offset", "dlq_failed_at", "dlq_attempts"} <= headers.keys()
    assert consumer.stats.dead_lettered >= 1


async def test_a_retryable_error_is_retried_then_succeeds(
    settings: KafkaSettings, producer: EventProducer, kafka_bootstrap: str
) -> None:
    key = f"model-{uuid.uuid4()}"
    event_id = await producer.send(DRIFT, key, DriftDetected(model=key, statistic=0.4))
    attempts = 0
    done = asyncio.Event()

    async def on_drift_detected(delivery: Delivery) -> None:
        nonlocal attempts
        attempts += 1
        if attempts <= 2:
            raise Unavailable("registry restarting")
        done.set()

    name = group("retry")
    consumer = EventConsumer(settings, group_id=name, topics=[DRIFT], types=EventTypes(DriftDetected),
                             handler=own(producer, on_drift_detected), dead_letters=producer)
    async with consuming(consumer):
        await asyncio.wait_for(done.wait(), 30)
    assert attempts == 3 and consumer.stats.retried == 2
    dead = [r for r in await read_topic(kafka_bootstrap, dead_letter_topic(DRIFT))
            if dict(r.headers).get("ce_id") == event_id.encode()]
    assert dead == []


async def test_a_batch_is_partitioned_ordered_and_traced_like_single_sends(
    producer: EventProducer, spans: InMemorySpanExporter, kafka_bootstrap: str
) -> None:
    """send_batch goes through aiokafka's record-batch interface on the real broker: every record
    arrives once, on the partition Kafka's murmur2 gives its key (as with single sends), in order
    per key, across batches that overflow (one key gets more than a batch's 512 KiB), with the
    batch span's context in its headers; a record over the request limit is refused by name."""
    from aiokafka.partitioner import murmur2

    from loopline_core.errors import InvalidArgument
    from loopline_core.kafka.producer import Outgoing

    spans.clear()
    keys = [str(uuid.uuid4()) for _ in range(40)]
    items = [Outgoing(keys[n % len(keys)], PredictionLogged(prediction_id=keys[n % len(keys)], latency_us=n))
             for n in range(2000)]
    heavy = str(uuid.uuid4())
    items += [Outgoing(heavy, PredictionLogged(prediction_id=heavy, latency_us=n, request_key="x" * 1000))
              for n in range(800)]  # ~800 KiB on one partition
    driver = producer._driver  # noqa: SLF001 - count the record batches it is asked for
    batches: list[int] = []
    create_batch = driver.create_batch
    driver.create_batch = lambda: batches.append(1) or create_batch()  # type: ignore[method-assign]
    with trace.get_tracer("test").start_as_current_span("log"):
        ids = await producer.send_batch(PREDICTIONS, items)
    assert len(batches) > PARTITIONS[PREDICTIONS]  # one per partition, and more for the heavy key
    assert len(set(ids)) == len(items)
    ours = [r for r in await read_topic(kafka_bootstrap, PREDICTIONS)
            if dict(r.headers).get("ce_source") == producer.source.encode()]
    assert sorted(dict(r.headers)["ce_id"].decode() for r in ours) == sorted(ids)
    by_key: dict[bytes, list[int]] = {}
    for record in sorted(ours, key=lambda r: (r.partition, r.offset)):
        assert record.partition == (murmur2(record.key) & 0x7FFFFFFF) % PARTITIONS[PREDICTIONS]
        by_key.setdefault(record.key, []).append(PredictionLogged.FromString(record.value).latency_us)
    assert all(values == sorted(values) for values in by_key.values())
    assert len(by_key[heavy.encode()]) == 800
    [batch_span] = [s for s in spans.get_finished_spans() if s.name == f"send {PREDICTIONS}"
                    and s.kind == SpanKind.PRODUCER]
    traceparents = {dict(r.headers).get("traceparent") for r in ours}
    context = batch_span.context
    assert traceparents == {f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}".encode()}
    huge = [Outgoing("k", PredictionLogged(request_key="x" * (2 << 20))), Outgoing("k", PredictionLogged())]
    with pytest.raises(InvalidArgument, match="max_request_size"):
        await producer.send_batch(PREDICTIONS, huge)
