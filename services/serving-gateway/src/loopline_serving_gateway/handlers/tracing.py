"""The gateway's spans per request, at the least cost: one SERVER span, one CLIENT span
per Triton call, and nothing else.

No context is attached (no contextvars work): the spans are started with an
explicit parent and the W3C context for Triton and for the prediction log is
formatted from the span context. When the sampler drops the request (for example
``OTEL_TRACES_SAMPLER=parentbased_traceidratio``), no client span is made at all:
Triton and the log get the server span's context, unsampled, so the ids still join.
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanContext, SpanKind, Status, StatusCode, set_span_in_context

Metadata = tuple[tuple[str, str], ...]


def traceparent_of(context: SpanContext) -> str:
    if not context.is_valid:
        return ""
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


class RequestTrace:
    """The trace of one request: its server span's W3C context and how to open client spans."""

    __slots__ = ("_metadata", "_parent", "_recording", "_tracer", "traceparent", "tracestate")

    def __init__(self, tracer: trace.Tracer, server: Span) -> None:
        context = server.get_span_context()
        self._tracer = tracer
        self.traceparent = traceparent_of(context)
        self.tracestate = context.trace_state.to_header() if context.trace_state else ""
        self._recording = server.is_recording()
        self._parent = set_span_in_context(server) if self._recording else None
        metadata: Metadata = (("traceparent", self.traceparent),) if self.traceparent else ()
        self._metadata = metadata + ((("tracestate", self.tracestate),) if self.tracestate else ())

    def client(self, triton_model: str) -> tuple[Span | None, Metadata]:
        """A CLIENT span for one Triton call and the metadata that carries it to Triton."""
        if not self._recording:
            return None, self._metadata
        span = self._tracer.start_span("triton ModelInfer", context=self._parent, kind=SpanKind.CLIENT,
                                       attributes={"loopline.triton_model": triton_model})
        context = span.get_span_context()
        metadata: Metadata = (("traceparent", traceparent_of(context)),)
        return span, metadata + ((("tracestate", self.tracestate),) if self.tracestate else ())


def failed(span: Span | None, error: BaseException) -> None:
    if span is not None and span.is_recording():
        span.set_status(Status(StatusCode.ERROR, str(error)))


class Tracing:
    """Opens the per-request traces; ``enabled=False`` makes every call a no-op returning None."""

    def __init__(self, enabled: bool, provider: trace.TracerProvider | None = None) -> None:
        self._tracer = trace.get_tracer("loopline.serving_gateway", tracer_provider=provider) if enabled else None
        self.fields = frozenset(propagate.get_global_textmap().fields)

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    def server(self, name: str, carrier: Mapping[str, str] | None) -> tuple[Span, RequestTrace] | None:
        """A SERVER span, child of the caller's context when ``carrier`` has one."""
        if self._tracer is None:
            return None
        parent = propagate.extract(carrier) if carrier else None
        span = self._tracer.start_span(name, context=parent, kind=SpanKind.SERVER)
        return span, RequestTrace(self._tracer, span)

    def current(self) -> RequestTrace | None:
        """The trace of the span already current (REST: the one the FastAPI instrumentation opened)."""
        if self._tracer is None:
            return None
        return RequestTrace(self._tracer, trace.get_current_span())
