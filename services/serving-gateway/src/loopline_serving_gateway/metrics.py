"""Prometheus metrics of the gateway (one registry per process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

_BUCKETS = (0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.0, 2.0, 5.0)


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        labels = ("model", "version", "variant", "protocol")
        self.requests = Counter("gateway_requests", "Answered inference requests", labels, registry=self.registry)
        self.latency = Histogram("gateway_request_seconds", "Latency of answered requests", labels,
                                 buckets=_BUCKETS, registry=self.registry)
        self.errors = Counter("gateway_request_errors", "Refused or failed requests", ("model", "reason"),
                              registry=self.registry)
        self.fallbacks = Counter("gateway_fallbacks", "Requests answered by a fallback", ("model", "version"),
                                 registry=self.registry)
        self.shadow_errors = Counter("gateway_shadow_errors", "Shadow calls that failed or were skipped",
                                     ("model", "reason"), registry=self.registry)
        self.log_dropped = Counter("gateway_prediction_log_dropped", "PredictionLogged events dropped",
                                   registry=self.registry)
        self.log_omitted = Counter("gateway_prediction_log_omitted_tensors",
                                   "Tensors logged without their values (the event would pass max_event_bytes)",
                                   registry=self.registry)
        self.log_sent = Counter("gateway_prediction_log_sent", "PredictionLogged events acknowledged by Kafka",
                                registry=self.registry)
        self.reconcile_failures = Counter("gateway_reconcile_failures", "Deployments not applied",
                                          ("model",), registry=self.registry)
        self._children: dict[tuple[str, int, int, str], tuple[Counter, Histogram]] = {}

    def observe(self, model: str, version: int, variant: int, protocol: str, seconds: float) -> None:
        key = (model, version, variant, protocol)
        children = self._children.get(key)
        if children is None:
            names = (model, str(version), _VARIANTS.get(variant, str(variant)), protocol)
            children = (self.requests.labels(*names), self.latency.labels(*names))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)


_VARIANTS = {1: "champion", 2: "canary", 3: "shadow", 4: "explicit", 5: "fallback"}
