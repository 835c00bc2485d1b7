"""The controller's actions continue the trace of the deployment change they act on.

A canary is started by a request (the trainer's SetDeployment, in the retrain
chain's trace); the registry records that request's W3C traceparent with the
deployment revision it made. When the controller steps, promotes or rolls back
that deployment, it opens one span whose parent is that remote context, so its
writes (audit entries, outbox events, and whatever consumes them) land in the
same trace. Its own write records its span in turn, so the next step continues
from there: canary start -> step -> step -> promote, one trace. A revision
with no recorded traceparent starts a new trace rather than joining the tick's.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import context, trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACER_NAME = "loopline_registry.rollout"
_W3C = TraceContextTextMapPropagator()


def parent_of(traceparent: str) -> context.Context:
    """The remote span context of a stored traceparent, or an empty context (a new trace) when none is usable.

    >>> from opentelemetry import trace
    >>> ctx = parent_of("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    >>> parent = trace.get_current_span(ctx).get_span_context()
    >>> format(parent.trace_id, "032x"), parent.is_remote
    ('0af7651916cd43dd8448eb211c80319c', True)
    >>> trace.get_current_span(parent_of("not a traceparent")).get_span_context().is_valid
    False
    """
    return _W3C.extract({"traceparent": traceparent}, context.Context()) if traceparent else context.Context()


@contextmanager
def action_span(traceparent: str, action: str, *, model: str, version: int, revision: int,
                reason: str) -> Iterator[trace.Span]:
    """One span for one action on one deployment, child of the change that made the revision acted on."""
    attributes = {"loopline.model": model, "loopline.version": version, "rollout.action": action,
                  "rollout.deployment_revision": revision, "loopline.reason": reason}
    tracer = trace.get_tracer(TRACER_NAME)  # looked up per span: the provider is installed after import
    with tracer.start_as_current_span(f"rollout {action}", context=parent_of(traceparent),
                                      attributes=attributes) as span:
        yield span
