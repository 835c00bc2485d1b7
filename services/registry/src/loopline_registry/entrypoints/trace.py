"""The current request's trace, for audit entries and the outbox (edges only)."""

from __future__ import annotations

from opentelemetry import propagate, trace


def current_trace() -> tuple[str, str]:
    """(trace id, W3C traceparent) of the active span, or empty strings."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return "", ""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return format(span_context.trace_id, "032x"), carrier.get("traceparent", "")


def bearer(value: str | None) -> str | None:
    """The key of an ``authorization: Bearer <key>`` value (None when absent or malformed)."""
    if not value:
        return None
    scheme, _, key = value.strip().partition(" ")
    return key.strip() or None if scheme.lower() == "bearer" else None
