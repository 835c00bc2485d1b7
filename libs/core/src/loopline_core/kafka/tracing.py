"""W3C trace context across Kafka hops.

A record is sent inside a ``send <topic>`` span (kind PRODUCER; one span for a
whole ``send_batch``) whose context is injected into the record headers (``traceparent``, ``tracestate``) by the global
propagator; a consumer extracts it and handles the record inside a
``process <topic>`` span (kind CONSUMER) that is a child of the producer's span,
so one trace runs through the hop. Tracer and propagator are looked up when a span
starts, never at import, so whatever ``loopline_core.telemetry`` (or a test)
installed is used; the tracer is kept while the installed provider stays the same
(an SDK provider makes a new tracer on every ``get_tracer``, about 20 µs, and the
gateway's prediction log opens a span for every batch it sends).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Link, Span, SpanKind

TRACER_NAME = "loopline_core.kafka"


_kept: tuple[trace.TracerProvider, trace.Tracer] | None = None


def _tracer() -> trace.Tracer:
    global _kept
    provider = trace.get_tracer_provider()
    kept = _kept
    if kept is None or kept[0] is not provider:
        kept = _kept = (provider, provider.get_tracer(TRACER_NAME))
    return kept[1]


def _base_attributes(topic: str, operation: str) -> dict[str, str]:
    return {
        "messaging.system": "kafka",
        "messaging.operation.type": operation,
        "messaging.destination.name": topic,
    }


@contextmanager
def send_span(topic: str, event_id: str | None = None, key: str | None = None) -> Iterator[list[tuple[str, bytes]]]:
    """Open ``send <topic>`` and yield the trace headers to put on the record."""
    attributes = _base_attributes(topic, "send")
    if event_id:
        attributes["messaging.message.id"] = event_id
    if key is not None:
        attributes["messaging.kafka.message.key"] = key
    with _tracer().start_as_current_span(f"send {topic}", kind=SpanKind.PRODUCER, attributes=attributes):
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        yield [(name, value.encode()) for name, value in carrier.items()]


@contextmanager
def send_batch_span(topic: str, count: int) -> Iterator[list[tuple[str, bytes]]]:
    """Open one ``send <topic>`` for ``count`` records and yield the trace headers that
    every one of them carries (the batch span's context: a consumer's ``process``
    span continues it)."""
    attributes: dict[str, str | int] = {**_base_attributes(topic, "send"), "messaging.batch.message_count": count}
    with _tracer().start_as_current_span(f"send {topic}", kind=SpanKind.PRODUCER, attributes=attributes):
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        yield [(name, value.encode()) for name, value in carrier.items()]


def _carrier(headers: Sequence[tuple[str, bytes]]) -> dict[str, str]:
    # Every propagator field (traceparent, tracestate, baggage...) is a text header.
    return {name.lower(): (raw or b"").decode("utf-8", "replace") for name, raw in headers}


@contextmanager
def process_span(topic: str, headers: Sequence[tuple[str, bytes]], *, group_id: str, partition: int,
                 offset: int) -> Iterator[Span]:
    """Open ``process <topic>`` as a child of the trace found in the headers."""
    parent = propagate.extract(_carrier(headers))
    attributes: dict[str, str | int] = {
        **_base_attributes(topic, "process"),
        "messaging.consumer.group.name": group_id,
        "messaging.destination.partition.id": str(partition),
        "messaging.kafka.offset": offset,
    }
    with _tracer().start_as_current_span(
        f"process {topic}", context=parent, kind=SpanKind.CONSUMER, attributes=attributes,
        record_exception=False, set_status_on_exception=False,
    ) as span:
        yield span


def context_of(headers: Sequence[tuple[str, bytes]]) -> otel_context.Context:
    """The trace context a record carries, to continue or link to its trace."""
    return propagate.extract(_carrier(headers))


#: A batch span links to at most this many of its records' traces.
MAX_BATCH_LINKS = 64


@contextmanager
def process_batch_span(topic: str, headers_of_records: Sequence[Sequence[tuple[str, bytes]]], *, group_id: str,
                       partition: int, first_offset: int, last_offset: int) -> Iterator[Span]:
    """Open ``process <topic>`` for a batch: a new trace linked to its records' traces.

    A one-record batch is a plain child of its record's trace, as with ``process_span``.
    """
    if len(headers_of_records) == 1:
        with process_span(topic, headers_of_records[0], group_id=group_id, partition=partition,
                          offset=first_offset) as span:
            yield span
        return
    links = []
    for headers in headers_of_records[:MAX_BATCH_LINKS]:
        span_context = trace.get_current_span(context_of(headers)).get_span_context()
        if span_context.is_valid:
            links.append(Link(span_context))
    attributes: dict[str, str | int] = {
        **_base_attributes(topic, "process"),
        "messaging.consumer.group.name": group_id,
        "messaging.destination.partition.id": str(partition),
        "messaging.batch.message_count": len(headers_of_records),
        "messaging.kafka.offset": first_offset,
        "loopline.kafka.last_offset": last_offset,
    }
    with _tracer().start_as_current_span(
        f"process {topic}", kind=SpanKind.CONSUMER, attributes=attributes, links=links,
        record_exception=False, set_status_on_exception=False,
    ) as span:
        yield span
