"""The gateway's light span path: what the SDK's exporters receive equals what its own spans give."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, TraceIdRatioBased
from opentelemetry.trace import NonRecordingSpan, SpanKind, StatusCode

from loopline_serving_gateway.handlers.tracing import Tracing, failed, traceparent_of

REMOTE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _provider(**kwargs: object) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: "serving-gateway"}), **kwargs)  # type: ignore[arg-type]
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def _request(tracing: Tracing, carrier: dict[str, str] | None, fail: bool = False) -> tuple[str, str]:
    opened = tracing.server("ModelInfer", carrier)
    assert opened is not None
    server, request_trace = opened
    client, metadata = request_trace.client("bench.v1")
    sent = dict(metadata).get("traceparent", "")
    if client is not None:
        if fail:
            failed(client, RuntimeError("triton down"))
        client.end()
        client.end()  # a second end is ignored
    if server.is_recording():
        server.set_attributes({"loopline.prediction_id": "p-1", "loopline.variant": "champion"})
    server.end()
    return request_trace.traceparent, sent


def test_server_and_client_spans_reach_the_exporter_as_sdk_spans() -> None:
    provider, exporter = _provider()
    server_parent, sent = _request(Tracing(True, provider), None, fail=True)
    client, server = exporter.get_finished_spans()
    assert isinstance(client, ReadableSpan) and isinstance(server, ReadableSpan)
    assert (server.name, server.kind, client.name, client.kind) == (
        "ModelInfer", SpanKind.SERVER, "triton ModelInfer", SpanKind.CLIENT)
    assert server.parent is None and client.parent == server.get_span_context()
    assert client.get_span_context().trace_id == server.get_span_context().trace_id
    assert server_parent == traceparent_of(server.get_span_context())
    assert sent == traceparent_of(client.get_span_context())
    # the flags the SDK's own spans get (sampled, and W3C level 2's random trace id)
    sdk_flags = provider.get_tracer("x").start_span("y").get_span_context().trace_flags
    assert client.get_span_context().trace_flags == server.get_span_context().trace_flags == sdk_flags
    assert int(sent[-2:], 16) & 1
    assert dict(client.attributes or {}) == {"loopline.triton_model": "bench.v1"}
    assert dict(server.attributes or {}) == {"loopline.prediction_id": "p-1", "loopline.variant": "champion"}
    assert client.status.status_code is StatusCode.ERROR and client.status.description == "triton down"
    assert server.status.status_code is StatusCode.UNSET
    assert server.resource.attributes[SERVICE_NAME] == "serving-gateway"
    assert server.instrumentation_scope is not None
    assert server.instrumentation_scope.name == "loopline.serving_gateway"
    for span in (client, server):
        assert span.start_time is not None and span.end_time is not None and span.start_time <= span.end_time
    assert client.start_time >= server.start_time and client.end_time <= server.end_time  # type: ignore[operator]


def test_the_callers_context_is_the_parent() -> None:
    provider, exporter = _provider()
    _request(Tracing(True, provider), {"traceparent": REMOTE})
    client, server = exporter.get_finished_spans()
    assert server.parent is not None and server.parent.is_remote
    assert format(server.parent.span_id, "016x") == "b7ad6b7169203331"
    assert format(server.get_span_context().trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"
    assert client.parent == server.get_span_context()


def test_the_providers_sampler_decides() -> None:
    provider, exporter = _provider(sampler=ALWAYS_OFF)
    tracing = Tracing(True, provider)
    opened = tracing.server("ModelInfer", None)
    assert opened is not None and isinstance(opened[0], NonRecordingSpan)
    server_parent, sent = _request(tracing, None)
    assert not int(server_parent[-2:], 16) & 1 and sent == server_parent  # ids still join, unsampled
    assert opened[0].get_span_context().trace_flags == provider.get_tracer("x").start_span("y").get_span_context(
        ).trace_flags
    # parent-based: an unsampled caller is not sampled, a sampled one is, whatever the ratio
    provider, exporter = _provider(sampler=ParentBased(TraceIdRatioBased(0.0)))
    tracing = Tracing(True, provider)
    _request(tracing, {"traceparent": REMOTE[:-2] + "00"})
    assert not exporter.get_finished_spans()
    _request(tracing, {"traceparent": REMOTE})
    assert len(exporter.get_finished_spans()) == 2


def test_other_providers_get_the_ordinary_tracer() -> None:
    opened = Tracing(True, trace.NoOpTracerProvider()).server("ModelInfer", None)
    assert opened is not None and not opened[0].is_recording()
    assert Tracing(False).server("ModelInfer", None) is None


def test_a_sampler_that_drops_sampled_local_children_is_still_asked() -> None:
    # the client span's decision is only taken for granted with parent-based sampling's
    # default for a sampled local parent (always on); any other rule is asked
    provider, exporter = _provider(sampler=ParentBased(TraceIdRatioBased(1.0), local_parent_sampled=ALWAYS_OFF))
    _request(Tracing(True, provider), None)
    [server] = exporter.get_finished_spans()
    assert server.kind is SpanKind.SERVER


def test_a_child_span_carries_its_parents_trace_state() -> None:
    provider, exporter = _provider()
    _, sent = _request(Tracing(True, provider), {"traceparent": REMOTE, "tracestate": "vendor=1"})
    client, server = exporter.get_finished_spans()
    assert client.get_span_context().trace_state.to_header() == "vendor=1"
    assert server.get_span_context().trace_state.to_header() == "vendor=1"
    assert sent == traceparent_of(client.get_span_context())
