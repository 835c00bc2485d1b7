"""Trace context crosses the Kafka hop: "process <topic>" continues "send <topic>"."""

from __future__ import annotations

import asyncio

from loopline.events.v1.predictions_pb2 import PredictionLogged
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from loopline_core.errors import InvalidArgument
from loopline_core.kafka.cloudevents import EventTypes
from loopline_core.kafka.consumer import EventConsumer
from loopline_core.kafka.handlers import Delivery
from loopline_core.kafka.memory import InMemoryBroker
from loopline_core.kafka.producer import EventProducer
from loopline_core.kafka.topics import PREDICTIONS
from loopline_core.kafka.tracing import process_span
from loopline_core.settings import KafkaSettings


def _named(spans: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans() if s.name == name]


async def _consume_one(broker: InMemoryBroker, producer: EventProducer, handler) -> EventConsumer:  # type: ignore[no-untyped-def]
    consumer = EventConsumer(KafkaSettings(), group_id="g", topics=[PREDICTIONS], types=EventTypes(PredictionLogged),
                             handler=handler, dead_letters=producer, driver=broker.consumer(PREDICTIONS, group_id="g"))
    task = asyncio.create_task(consumer.run())
    while consumer.stats.handled + consumer.stats.dead_lettered < 1 and not task.done():
        await asyncio.sleep(0.002)
    consumer.stop()
    await asyncio.wait_for(task, 5)
    return consumer


async def test_the_handler_runs_in_a_consumer_span_of_the_producer_trace(spans: InMemorySpanExporter) -> None:
    spans.clear()
    broker = InMemoryBroker()
    producer = EventProducer(KafkaSettings(), service="gateway", driver=broker.producer())
    await producer.start()
    with trace.get_tracer("test").start_as_current_span("request") as request:
        event_id = await producer.send(PREDICTIONS, "p-1", PredictionLogged(prediction_id="p-1"))
    inside: list[trace.SpanContext] = []

    async def handler(delivery: Delivery) -> None:
        inside.append(trace.get_current_span().get_span_context())

    await _consume_one(broker, producer, handler)
    [send] = _named(spans, f"send {PREDICTIONS}")
    [process] = _named(spans, f"process {PREDICTIONS}")
    assert process.kind == SpanKind.CONSUMER
    assert process.context.trace_id == send.context.trace_id == request.get_span_context().trace_id
    assert process.parent.span_id == send.context.span_id
    assert inside == [process.context]
    assert process.attributes["messaging.message.id"] == event_id
    assert process.attributes["messaging.consumer.group.name"] == "g"
    assert process.status.status_code == StatusCode.UNSET


async def test_a_dead_lettered_record_marks_its_span_failed(spans: InMemorySpanExporter) -> None:
    spans.clear()
    broker = InMemoryBroker()
    producer = EventProducer(KafkaSettings(), service="gateway", driver=broker.producer())
    await producer.start()
    await producer.send(PREDICTIONS, "p-1", PredictionLogged())

    async def handler(delivery: Delivery) -> None:
        raise InvalidArgument("no model")

    await _consume_one(broker, producer, handler)
    [process] = _named(spans, f"process {PREDICTIONS}")
    assert process.status.status_code == StatusCode.ERROR
    assert [e.name for e in process.events] == ["exception"]
    [dlq_send] = _named(spans, f"send {PREDICTIONS}.dlq")
    assert dlq_send.parent.span_id == process.context.span_id


def test_unreadable_trace_headers_start_a_new_trace(spans: InMemorySpanExporter) -> None:
    with process_span(PREDICTIONS, [("traceparent", b"\xff garbage")], group_id="g", partition=0, offset=0) as span:
        assert span.get_span_context().is_valid
        assert span.parent is None  # type: ignore[attr-defined]


def test_the_tracer_is_kept_while_the_provider_stays_and_follows_a_new_one(
        spans: InMemorySpanExporter, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from loopline_core.kafka import tracing

    assert tracing._tracer() is tracing._tracer()
    other = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(other))
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    spans.clear()
    with process_span(PREDICTIONS, [], group_id="g", partition=0, offset=1):
        pass
    assert [s.name for s in other.get_finished_spans()] == [f"process {PREDICTIONS}"]
    assert spans.get_finished_spans() == ()
