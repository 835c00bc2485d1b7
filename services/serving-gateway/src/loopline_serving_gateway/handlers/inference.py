"""The one inference handler both transports call: route, call Triton, fall back, shadow, log."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from tritonclient.grpc import service_pb2 as pb

from loopline_core.errors import InvalidArgument, LooplineError, Unavailable

from loopline_serving_gateway.domain.ids import prediction_id as new_prediction_id
from loopline_serving_gateway.domain.routing import RoutingTable, Target, Variant
from loopline_serving_gateway.handlers.prediction_events import Served
from loopline_serving_gateway.handlers.prediction_log import PredictionLog
from loopline_serving_gateway.handlers.tracing import RequestTrace, failed
from loopline_serving_gateway.handlers.validation import checked
from loopline_serving_gateway.metrics import GatewayMetrics
from loopline_serving_gateway.settings import GatewaySettings

log = logging.getLogger(__name__)
_MAX_SHADOWS_IN_FLIGHT = 256


class TritonInfer(Protocol):
    async def infer(self, request: pb.ModelInferRequest, timeout_s: float,
                    metadata: Sequence[tuple[str, str]] | None = None) -> pb.ModelInferResponse: ...


@dataclass(slots=True)
class Answer:
    response: pb.ModelInferResponse
    prediction_id: str
    version: int
    variant: Variant
    fallback_reason: str = ""


class Inference:
    def __init__(self, table: RoutingTable, triton: TritonInfer, log_: PredictionLog | None,
                 metrics: GatewayMetrics, settings: GatewaySettings, inflight: Counter[str], *,
                 on_unavailable: Callable[[str], None] | None = None) -> None:
        self._table = table
        self._triton = triton
        self._log = log_
        self._metrics = metrics
        self._limits = settings.limits
        self._timeout = settings.triton_timeout_s
        self._inflight = inflight
        self._shadows: set[asyncio.Task[None]] = set()
        #: Told the Triton model of every call that failed other than on bad input (the
        #: reconciler checks it is still loaded; Triton may have restarted).
        self._on_unavailable = on_unavailable

    async def _call(self, request: pb.ModelInferRequest, target: Target,
                    trace: RequestTrace | None) -> pb.ModelInferResponse:
        name = target.triton_model
        request.model_name = name
        request.model_version = str(target.version)
        span, metadata = trace.client(name) if trace is not None else (None, None)
        self._inflight[name] += 1
        try:
            return await self._triton.infer(request, self._timeout, metadata)
        except LooplineError as exc:
            failed(span, exc)
            if self._on_unavailable is not None and not isinstance(exc, InvalidArgument):
                self._on_unavailable(name)
            raise
        finally:
            self._inflight[name] -= 1
            if span is not None:
                span.end()

    async def infer(self, request: pb.ModelInferRequest, *, key: str = "", protocol: str = "grpc",
                    trace: RequestTrace | None = None) -> Answer:
        """Validate, route, call Triton (falling back), log; ``trace`` opens a client span per Triton call."""
        started = time.perf_counter_ns()
        rows, data_bytes = checked(request, self._limits)
        model = request.model_name
        route = self._table.get(model)
        target = route.explicit(int(request.model_version)) if request.model_version else route.pick(key or None)
        shadow_source = None
        if route.shadows and self._log is not None:
            shadow_source = pb.ModelInferRequest()
            shadow_source.CopyFrom(request)
        reason = ""
        try:
            response = await self._call(request, target, trace)
        except InvalidArgument:
            self._metrics.errors.labels(model, "invalid").inc()
            raise
        except LooplineError as exc:
            fallback = route.fallback_for(target)
            if fallback is None:
                self._metrics.errors.labels(model, "unavailable").inc()
                raise Unavailable(f"{exc}; no fallback for {model}") from exc
            reason = f"v{target.version} failed: {exc}"
            target = fallback
            self._metrics.fallbacks.labels(model, str(fallback.version)).inc()
            response = await self._call(request, target, trace)
        prediction_id = new_prediction_id()
        response.model_name = model
        response.model_version = str(target.version)
        params = response.parameters
        params["prediction_id"].string_param = prediction_id
        params["variant"].string_param = target.variant.name.lower()
        if reason:
            params["fallback"].bool_param = True
            params["fallback_reason"].string_param = reason
        latency_us = (time.perf_counter_ns() - started) // 1000
        self._metrics.observe(model, target.version, target.variant, protocol, latency_us / 1e6)
        if self._log is not None:
            traceparent, tracestate = (trace.traceparent, trace.tracestate) if trace is not None else ("", "")
            self._log.record(Served(prediction_id, model, target.version, int(target.variant), target.triton_model,
                                    request, response, latency_us, time.time_ns(), rows, key, traceparent,
                                    tracestate, reason, data_bytes))
            if shadow_source is not None:
                self._start_shadows(route.shadows, shadow_source, prediction_id, rows, key, traceparent, tracestate,
                                    data_bytes)
        return Answer(response, prediction_id, target.version, target.variant, reason)

    def _start_shadows(self, shadows: tuple[Target, ...], source: pb.ModelInferRequest, prediction_id: str,
                       rows: int, key: str, traceparent: str, tracestate: str, data_bytes: int) -> None:
        for index, shadow in enumerate(shadows):
            if len(self._shadows) >= _MAX_SHADOWS_IN_FLIGHT:
                self._metrics.shadow_errors.labels(shadow.model, "skipped").inc()
                continue
            request = source
            if index < len(shadows) - 1:
                request = pb.ModelInferRequest()
                request.CopyFrom(source)
            task = asyncio.create_task(self._shadow(shadow, request, prediction_id, rows, key, traceparent,
                                                    tracestate, data_bytes))
            self._shadows.add(task)
            task.add_done_callback(self._shadows.discard)

    async def _shadow(self, shadow: Target, request: pb.ModelInferRequest, prediction_id: str, rows: int,
                      key: str, traceparent: str, tracestate: str, data_bytes: int) -> None:
        started = time.perf_counter_ns()
        try:
            response = await self._call(request, shadow, None)
        except LooplineError as exc:
            self._metrics.shadow_errors.labels(shadow.model, "failed").inc()
            log.debug("shadow %s failed: %s", shadow.triton_model, exc)
            return
        latency_us = (time.perf_counter_ns() - started) // 1000
        self._metrics.observe(shadow.model, shadow.version, Variant.SHADOW, "shadow", latency_us / 1e6)
        assert self._log is not None
        self._log.record(Served(prediction_id, shadow.model, shadow.version, int(Variant.SHADOW),
                                shadow.triton_model, request, response, latency_us, time.time_ns(), rows, key,
                                traceparent, tracestate, "", data_bytes))
