"""The JSONL exporter's fast serialization writes exactly what ``span_to_dict`` describes."""

from __future__ import annotations

import json

from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from loopline_core.telemetry import span_to_dict, span_to_json


def _spans(resource: Resource) -> list:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("parent \"quoted\" é\n", kind=SpanKind.SERVER) as parent:
        with tracer.start_as_current_span("child", attributes={
                "int": 1, "float": 0.5, "bool": True, "str": "a\"b\\c\u2028", "ints": [1, 2], "strs": ("x", "y"),
                "floats": [1.5, -2.0], "bools": [True, False]}) as child:
            child.set_status(Status(StatusCode.ERROR, "boom"))
        linked = tracer.start_span("linked", links=[Link(parent.get_span_context()), Link(child.get_span_context())],
                                   kind=SpanKind.CLIENT)
        linked.end()
    return list(exporter.get_finished_spans())


def test_span_to_json_is_the_dict_as_compact_json() -> None:
    for resource in (Resource.create({SERVICE_NAME: "serving-gateway"}), Resource.get_empty(),
                     Resource({SERVICE_NAME: "ünïcode \"svc\""})):
        spans = _spans(resource)
        assert len(spans) == 3
        for span in spans:
            encoded = span_to_json(span)
            assert encoded == json.dumps(span_to_dict(span), separators=(",", ":"))
            assert json.loads(encoded)["name"] == span.name


def test_a_span_not_ended_has_null_end() -> None:
    provider = TracerProvider()
    span = provider.get_tracer("test").start_span("open")
    assert json.loads(span_to_json(span))["end_ns"] is None  # type: ignore[arg-type]
    assert span_to_json(span) == json.dumps(span_to_dict(span), separators=(",", ":"))  # type: ignore[arg-type]
    span.end()
