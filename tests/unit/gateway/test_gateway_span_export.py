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


def test_otlp_request_equals_the_sdks() -> None:
    """``encode_otlp`` builds the request the SDK's encoder builds (one resource, one or several
    scopes, equal resources as distinct objects merged), and the OTLP exporter uses it."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    from loopline_core.telemetry import _otlp_exporter, encode_otlp

    first = _spans(Resource.create({SERVICE_NAME: "serving-gateway"}))
    same, again = _spans(Resource({SERVICE_NAME: "same"})), _spans(Resource({SERVICE_NAME: "same"}))
    assert same[0].resource == again[0].resource and same[0].resource is not again[0].resource
    other = _spans(Resource({SERVICE_NAME: "other"}))
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=first[0].resource)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.get_tracer("second scope", "1.0").start_span("s", attributes={"k": "v"}).end()
    scoped = list(exporter.get_finished_spans())
    for batch in (first, first + scoped + first, first + other + first, same + again, same + first + again, []):
        assert encode_otlp(batch) == encode_spans(batch)
        assert len(encode_otlp(batch).resource_spans) == len(encode_spans(batch).resource_spans)
        assert encode_otlp(batch).SerializeToString() == encode_spans(batch).SerializeToString()
    assert _otlp_exporter()._translate_data(first) == encode_spans(first)  # type: ignore[attr-defined]
