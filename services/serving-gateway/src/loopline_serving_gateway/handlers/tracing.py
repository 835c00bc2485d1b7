"""The gateway's spans per request, at the least cost: one SERVER span, one CLIENT span
per Triton call, and nothing else.

No context is attached (no contextvars work): the spans are started with an
explicit parent and the W3C context for Triton and for the prediction log is
formatted from the span context. When the sampler drops the request (for example
``OTEL_TRACES_SAMPLER=parentbased_traceidratio``), no client span is made at all:
Triton and the log get the server span's context, unsampled, so the ids still join.

With the OTel SDK's tracer provider (what ``setup_tracing`` installs), the spans are
recorded lightly: ids from the provider's id generator, the decision from its sampler
(``OTEL_TRACES_SAMPLER`` holds), and while open a span is a few plain fields; when it
ends it is handed to the provider's span processors (the batch exporter) as the SDK's
``ReadableSpan``, the very object its exporters read. That skips what the SDK's own
span does per span and the gateway does not use (locks, attribute re-validation,
span limits, the processors' ``on_start``, the SDK's self-metrics) and costs about a
third of it. Any other provider (the API's proxy too: ``Tracing`` is made after
``setup_tracing``) gets the ordinary tracer's spans.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    INVALID_SPAN_CONTEXT, NonRecordingSpan, Span, SpanContext, SpanKind, Status, StatusCode, TraceFlags,
    set_span_in_context,
)

Metadata = tuple[tuple[str, str], ...]


def traceparent_of(context: SpanContext) -> str:
    if not context.is_valid:
        return ""
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


_SCOPE = "loopline.serving_gateway"
_UNSET = Status(StatusCode.UNSET)


class _Recorder:
    """Starts spans from an SDK provider's sampler and id generator; ends them into its processors."""

    __slots__ = ("_ids", "_inherit", "_processor", "_resource", "_sampler", "_scope")

    def __init__(self, provider: SdkTracerProvider) -> None:
        self._sampler = provider.sampler
        # With the SDK's parent-based sampler and its default for a sampled local parent
        # (always on: every OTEL_TRACES_SAMPLER=parentbased_* is), a child of a recording span is
        # recorded and sampled: its decision is known without asking the sampler.
        local = getattr(self._sampler, "_local_parent_sampled", None)
        self._inherit = isinstance(self._sampler, ParentBased) and local is ALWAYS_ON
        self._ids = provider.id_generator
        self._resource = provider.resource
        # The provider's processors (the batch exporter): the SDK's own spans end into them too.
        self._processor = provider._active_span_processor  # noqa: SLF001
        self._scope = InstrumentationScope(_SCOPE)

    def start(self, name: str, context: Context | None, kind: SpanKind,
              attributes: Mapping[str, Any] | None = None) -> Span:
        parent = trace.get_current_span(context).get_span_context() if context is not None else INVALID_SPAN_CONTEXT
        if parent.is_valid:
            trace_id, random_id = parent.trace_id, parent.trace_flags.random_trace_id
        else:
            parent, trace_id, random_id = None, self._ids.generate_trace_id(), self._ids.is_trace_id_random()
        result = self._sampler.should_sample(context, trace_id, name, kind, attributes)
        flags = TraceFlags.SAMPLED if result.decision.is_sampled() else TraceFlags.DEFAULT
        if random_id:
            flags |= TraceFlags.RANDOM_TRACE_ID
        span_context = SpanContext(trace_id, self._ids.generate_span_id(), is_remote=False,
                                   trace_flags=TraceFlags(flags), trace_state=result.trace_state)
        if not result.decision.is_recording():
            return NonRecordingSpan(span_context)
        recorded = dict(result.attributes) if result.attributes else {}
        if attributes:
            recorded.update(attributes)
        return _Span(self, name, span_context, parent, kind, recorded)

    def child(self, name: str, parent: _Span, kind: SpanKind, attributes: dict[str, Any]) -> Span:
        """A span under ``parent`` (one of ours, recording), the sampler asked only when its
        decision for a sampled local parent is not simply "sampled" (see ``__init__``)."""
        if not self._inherit:
            return self.start(name, set_span_in_context(parent), kind, attributes)
        context = parent.context
        span_context = SpanContext(context.trace_id, self._ids.generate_span_id(), False, context.trace_flags,
                                   context.trace_state)
        return _Span(self, name, span_context, context, kind, attributes)

    def end(self, span: _Span, end_time: int) -> None:
        self._processor.on_end(ReadableSpan(
            name=span.name, context=span.context, parent=span.parent, resource=self._resource,
            attributes=span.attributes, kind=span.kind, status=span.status, start_time=span.start_time,
            end_time=end_time, instrumentation_scope=self._scope))


class _Span(Span):
    """An open span of the light path: its fields, until ``end`` hands it to the processors."""

    __slots__ = ("_ended", "_recorder", "attributes", "context", "kind", "name", "parent", "start_time", "status")

    def __init__(self, recorder: _Recorder, name: str, context: SpanContext, parent: SpanContext | None,
                 kind: SpanKind, attributes: dict[str, Any]) -> None:
        self._recorder = recorder
        self._ended = False
        self.name = name
        self.context = context
        self.parent = parent
        self.kind = kind
        self.attributes = attributes
        self.status = _UNSET
        self.start_time = time.time_ns()

    def end(self, end_time: int | None = None) -> None:
        if not self._ended:
            self._ended = True
            self._recorder.end(self, end_time or time.time_ns())

    def get_span_context(self) -> SpanContext:
        return self.context

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        if not self._ended:
            self.attributes.update(attributes)

    def set_attribute(self, key: str, value: Any) -> None:
        if not self._ended:
            self.attributes[key] = value

    def add_event(self, name: str, attributes: Any = None, timestamp: int | None = None) -> None:
        return None  # the gateway's spans carry no events

    def update_name(self, name: str) -> None:
        if not self._ended:
            self.name = name

    def is_recording(self) -> bool:
        return not self._ended

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self._ended:
            return
        self.status = status if isinstance(status, Status) else Status(status, description)

    def record_exception(self, exception: BaseException, attributes: Any = None, timestamp: int | None = None,
                         escaped: bool = False) -> None:
        self.set_status(Status(StatusCode.ERROR, str(exception)))


def _recorder_of(provider: trace.TracerProvider | None) -> _Recorder | None:
    provider = provider if provider is not None else trace.get_tracer_provider()
    if isinstance(provider, SdkTracerProvider) and hasattr(provider, "_active_span_processor"):
        return _Recorder(provider)
    return None


class _Starter:
    """``start_span`` of the light recorder, else of the ordinary tracer."""

    __slots__ = ("_recorder", "_tracer")

    def __init__(self, tracer: trace.Tracer, recorder: _Recorder | None) -> None:
        self._tracer = tracer
        self._recorder = recorder

    def start(self, name: str, context: Context | None, kind: SpanKind,
              attributes: Mapping[str, Any] | None = None) -> Span:
        if self._recorder is not None:
            return self._recorder.start(name, context, kind, attributes)
        return self._tracer.start_span(name, context=context, kind=kind, attributes=attributes)

    def child(self, name: str, parent: Span, kind: SpanKind, attributes: dict[str, Any]) -> Span:
        """A span under ``parent``, a recording span this starter made."""
        if self._recorder is not None and isinstance(parent, _Span):
            return self._recorder.child(name, parent, kind, attributes)
        return self.start(name, set_span_in_context(parent), kind, attributes)


class RequestTrace:
    """The trace of one request: its server span's W3C context and how to open client spans."""

    __slots__ = ("_metadata", "_recording", "_server", "_tracer", "traceparent", "tracestate")

    def __init__(self, tracer: _Starter, server: Span) -> None:
        context = server.get_span_context()
        self._tracer = tracer
        self.traceparent = traceparent_of(context)
        self.tracestate = context.trace_state.to_header() if context.trace_state else ""
        self._recording = server.is_recording()
        self._server = server
        metadata: Metadata = (("traceparent", self.traceparent),) if self.traceparent else ()
        self._metadata = metadata + ((("tracestate", self.tracestate),) if self.tracestate else ())

    def client(self, triton_model: str) -> tuple[Span | None, Metadata]:
        """A CLIENT span for one Triton call and the metadata that carries it to Triton."""
        if not self._recording:
            return None, self._metadata
        span = self._tracer.child("triton ModelInfer", self._server, SpanKind.CLIENT,
                                  {"loopline.triton_model": triton_model})
        context = span.get_span_context()
        metadata: Metadata = (("traceparent", traceparent_of(context)),)
        return span, metadata + ((("tracestate", self.tracestate),) if self.tracestate else ())


def failed(span: Span | None, error: BaseException) -> None:
    if span is not None and span.is_recording():
        span.set_status(Status(StatusCode.ERROR, str(error)))


class Tracing:
    """Opens the per-request traces; ``enabled=False`` makes every call a no-op returning None."""

    def __init__(self, enabled: bool, provider: trace.TracerProvider | None = None) -> None:
        self._tracer = _Starter(trace.get_tracer(_SCOPE, tracer_provider=provider), _recorder_of(provider)
                                ) if enabled else None
        self.fields = frozenset(propagate.get_global_textmap().fields)

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    def server(self, name: str, carrier: Mapping[str, str] | None) -> tuple[Span, RequestTrace] | None:
        """A SERVER span, child of the caller's context when ``carrier`` has one."""
        if self._tracer is None:
            return None
        parent = propagate.extract(carrier) if carrier else None
        span = self._tracer.start(name, parent, SpanKind.SERVER)
        return span, RequestTrace(self._tracer, span)
