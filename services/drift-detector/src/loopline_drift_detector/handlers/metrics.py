"""What the detect loop reports on /metrics.

``drift_values`` counts the values each stream was offered, by outcome: valid, or
turned away before any detector (missing, nan, inf, out_of_range, wrong_type). It is
read from the monitors' own counts whenever a partition is checkpointed, so it
survives restarts with the state and costs nothing per event.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from loopline_drift_detector.handlers.state import PartitionState


class DriftMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry or CollectorRegistry()
        self.values = Gauge("drift_values", "values offered to a monitored stream, by outcome (as checkpointed)",
                            ["model", "version", "stream", "outcome"], registry=r)
        self.decisions = Counter("drift_decisions", "DriftDetected decisions made", ["model", "kind"], registry=r)
        self.retrain_requests = Counter("drift_retrain_requests", "RetrainRequested decisions made", ["model"],
                                        registry=r)

    def report(self, state: PartitionState) -> None:
        for (model, version), tracked in state.versions.items():
            for stream, counts in tracked.monitor.value_counts().items():
                for outcome, n in counts.items():
                    self.values.labels(model, str(version), stream, outcome).set(n)
