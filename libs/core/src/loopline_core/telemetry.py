"""OpenTelemetry set-up from the standard OTEL_* variables.

With ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or the traces-specific variable) set, spans
go to that collector over OTLP. Otherwise they are kept locally: appended as one
JSON object per line to ``<local_trace_dir>/<service>.jsonl``, which
``loopline trace`` reads. ``OTEL_SDK_DISABLED=true`` turns tracing off.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from loopline_core.settings import TelemetrySettings


class JsonlSpanExporter(SpanExporter):
    """Appends finished spans to a JSONL file (one writer per process)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = [span_to_json(s) for s in spans]
        with self._lock, self._path.open("a", encoding="utf-8") as out:
            out.write("\n".join(lines) + "\n")
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def span_to_dict(span: ReadableSpan) -> dict[str, object]:
    ctx = span.get_span_context()
    parent = span.parent
    return {
        "trace_id": format(ctx.trace_id, "032x"),
        "span_id": format(ctx.span_id, "016x"),
        "parent_span_id": format(parent.span_id, "016x") if parent else None,
        "name": span.name,
        "kind": span.kind.name,
        "service": span.resource.attributes.get(SERVICE_NAME, ""),
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "status": span.status.status_code.name,
        "attributes": dict(span.attributes or {}),
        "links": [
            {"trace_id": format(link.context.trace_id, "032x"), "span_id": format(link.context.span_id, "016x")}
            for link in span.links
        ],
    }


_encode = json.JSONEncoder(separators=(",", ":")).encode
#: JSON of span names and service names, which repeat from span to span (bounded: cleared when full).
_strings: dict[str, str] = {}


def _string(value: str) -> str:
    encoded = _strings.get(value)
    if encoded is None:
        if len(_strings) >= 1024:
            _strings.clear()
        encoded = _strings[value] = _encode(value)
    return encoded


def _value(value: object) -> str:
    return _string(value) if type(value) is str else _encode(value)


def _ns(value: int | None) -> str:
    return "null" if value is None else str(value)


_text = json.encoder.encode_basestring_ascii  # what json.dumps does with a str (ensure_ascii)


def _attributes(attributes: Mapping[str, object]) -> str:
    """``_encode(dict(attributes))``: str and int values (the usual ones) written here, the rest by json."""
    parts = []
    for key, value in attributes.items():
        kind = type(value)
        parts.append(f"{_string(key) if type(key) is str else _encode(key)}:"
                     f"{_text(value) if kind is str else str(value) if kind is int else _encode(value)}")
    return "{" + ",".join(parts) + "}"


def span_to_json(span: ReadableSpan) -> str:
    """``json.dumps(span_to_dict(span), separators=(",", ":"))``, at a fraction of its cost:
    the export thread runs this for every span, holding the interpreter's lock."""
    ctx = span.get_span_context()
    parent = span.parent
    attributes = span.attributes
    links = span.links
    return "".join((
        '{"trace_id":"', format(ctx.trace_id, "032x"), '","span_id":"', format(ctx.span_id, "016x"),
        '","parent_span_id":', '"' + format(parent.span_id, "016x") + '"' if parent else "null",
        ',"name":', _string(span.name), ',"kind":"', span.kind.name,
        '","service":', _value(span.resource.attributes.get(SERVICE_NAME, "")),
        ',"start_ns":', _ns(span.start_time), ',"end_ns":', _ns(span.end_time),
        ',"status":"', span.status.status_code.name,
        '","attributes":', _attributes(attributes) if attributes else "{}",
        ',"links":[', ",".join(
            f'{{"trace_id":"{link.context.trace_id:032x}","span_id":"{link.context.span_id:016x}"}}'
            for link in links) if links else "", "]}",
    ))


def encode_otlp(spans: Sequence[ReadableSpan]) -> Any:
    """The OTLP export request for ``spans``, as the SDK's ``encode_spans`` builds it, with the
    spans grouped by their resource and scope objects first: the SDK groups by the resource's
    hash, a JSON dump of its attributes per span. Groups of equal but distinct resources (or
    scopes) are then merged, so the request has the same groups (spans of a merged group in
    the order of their objects, first seen first)."""
    from opentelemetry.exporter.otlp.proto.common._internal import (
        _encode_instrumentation_scope, _encode_resource,
    )
    from opentelemetry.exporter.otlp.proto.common._internal.trace_encoder import _encode_span
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    by_object: dict[int, tuple[Resource, dict[int, tuple[Any, list[ReadableSpan]]]]] = {}
    for span in spans:
        resource = span.resource
        entry = by_object.get(id(resource))
        if entry is None:
            entry = by_object[id(resource)] = (resource, {})
        scope = span.instrumentation_scope or None
        group = entry[1].get(id(scope))
        if group is None:
            group = entry[1][id(scope)] = (scope, [])
        group[1].append(span)
    merged: dict[Resource, dict[Any, list[ReadableSpan]]] = {}
    for resource, scopes in by_object.values():
        target = merged.setdefault(resource, {})
        for scope, group_spans in scopes.values():
            target.setdefault(scope, []).extend(group_spans)
    request = ExportTraceServiceRequest()
    for resource, scopes in merged.items():
        resource_spans = request.resource_spans.add(resource=_encode_resource(resource),
                                                    schema_url=resource.schema_url)
        for scope, group_spans in scopes.items():
            scope_spans = resource_spans.scope_spans.add(scope=_encode_instrumentation_scope(scope),
                                                         schema_url=scope.schema_url if scope else None)
            scope_spans.spans.extend([_encode_span(span) for span in group_spans])
    return request


def _otlp_exporter() -> SpanExporter:
    """The OTLP/gRPC exporter (configured by the OTEL_EXPORTER_OTLP_* variables), encoding with ``encode_otlp``."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    class _Exporter(OTLPSpanExporter):
        def _translate_data(self, data: Sequence[ReadableSpan]) -> Any:
            return encode_otlp(data)

    return _Exporter()


#: Spans per export. The batch processor's thread holds the GIL while it encodes a batch (6 µs a
#: span as JSON), and whatever the event loop has to do meanwhile waits: the SDK's default of 512
#: held it about 3 ms at a time, which showed in the gateway's p99 (added p99 at 4 concurrent
#: requests lower in every round with 32 in two same-run comparisons, medians 5.7 -> 3.9 and
#: 5.5 -> 4.4 ms, for about 3 % more gateway CPU: more exports, more thread wake-ups;
#: loadtests/bench_gateway.py). OTEL_BSP_MAX_EXPORT_BATCH_SIZE still wins.
EXPORT_BATCH = 32


def _otlp_endpoint(env: Mapping[str, str]) -> str | None:
    return env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")


def setup_tracing(
    service_name: str, settings: TelemetrySettings, env: Mapping[str, str] | None = None
) -> TracerProvider | None:
    """Install the global tracer provider for this process and return it."""
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return None
    resource = Resource.create({SERVICE_NAME: env.get("OTEL_SERVICE_NAME", service_name)})
    provider = TracerProvider(resource=resource)
    if _otlp_endpoint(env):
        exporter: SpanExporter = _otlp_exporter()
    else:
        exporter = JsonlSpanExporter(settings.local_trace_dir / f"{service_name}.jsonl")
    batch = int(env.get("OTEL_BSP_MAX_EXPORT_BATCH_SIZE") or EXPORT_BATCH)
    provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=batch))
    trace.set_tracer_provider(provider)
    return provider
