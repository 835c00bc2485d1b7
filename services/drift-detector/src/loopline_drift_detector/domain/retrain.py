"""When drift becomes a retrain request: debounced, one open request per model.

A request needs ``min_evidence``: decisions on one version within ``evidence_window``
of each other, one per (kind, feature), weighted by kind (by default a performance or concept
decision alone is enough; data drift needs two features). None is made while the
model has an open request (until it is closed or ``request_timeout`` passes) or
within ``cooldown`` of the last one. Time is the decisions' event time, never the
wall clock, and the id is a UUIDv5 of the evidence, so a replay asks with the same
id or not at all.

>>> from datetime import datetime, timedelta, timezone
>>> from loopline_drift_detector.domain.decisions import DriftDecision, EvidenceWindow
>>> t0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
>>> def drift(feature, minutes):
...     at = t0 + timedelta(minutes=minutes)
...     return DriftDecision(f"id-{feature}-{minutes}", "churn", 3, DriftKind.DATA, feature, "cusum", 13.0,
...                          12.0, EvidenceWindow(at, at, 20, 1000, 0), {}, {}, (), at, 0, f"feature/{feature}")
>>> policy = RetrainPolicy()
>>> policy.on_drift(drift("age", 0)) is None  # one feature is not enough
True
>>> request = policy.on_drift(drift("plan", 5))
>>> request.reason
'data drift on age (cusum), plan (cusum)'
>>> policy.on_drift(drift("income", 6)) is None  # the request is still open
True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from loopline_drift_detector.domain.decisions import DriftDecision, DriftKind, RetrainRequest, request_id

DEFAULT_WEIGHTS = {DriftKind.DATA: 1.0, DriftKind.CONCEPT: 2.0, DriftKind.PERFORMANCE: 2.0}


@dataclass(frozen=True)
class RetrainConfig:
    cooldown: timedelta = timedelta(hours=6)
    evidence_window: timedelta = timedelta(hours=1)
    min_evidence: float = 2.0
    weights: Mapping[DriftKind, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    #: An open request that nobody closed stops blocking after this long.
    request_timeout: timedelta = timedelta(hours=24)


class RetrainPolicy:
    def __init__(self, config: RetrainConfig | None = None) -> None:
        self.config = config or RetrainConfig()
        self._evidence: dict[tuple[str, int], list[DriftDecision]] = {}  # by (model, version)
        self._open: dict[str, RetrainRequest] = {}
        self._last_at: dict[str, datetime] = {}

    def open_request(self, model: str) -> RetrainRequest | None:
        return self._open.get(model)

    def on_request_closed(self, model: str, request_id: str) -> None:
        """The trainer finished (or gave up on) a request."""
        if model in self._open and self._open[model].request_id == request_id:
            del self._open[model]

    def on_drift(self, decision: DriftDecision) -> RetrainRequest | None:
        c, model, at = self.config, decision.model, decision.detected_at
        key = (model, decision.version)
        evidence = [d for d in self._evidence.get(key, ()) if abs(at - d.detected_at) <= c.evidence_window]
        if all(d.drift_id != decision.drift_id for d in evidence):
            evidence.append(decision)
        self._evidence[key] = evidence
        open_request = self._open.get(model)
        if open_request is not None and at - open_request.requested_at < c.request_timeout:
            return None
        if model in self._last_at and at - self._last_at[model] < c.cooldown:
            return None
        distinct: dict[tuple[DriftKind, str], DriftDecision] = {}
        for d in evidence:
            distinct.setdefault((d.kind, d.feature), d)
        if sum(c.weights.get(kind, 0.0) for kind, _ in distinct) < c.min_evidence:
            return None
        chosen = tuple(distinct.values())
        request = RetrainRequest(
            request_id=request_id(model, decision.version, (d.drift_id for d in chosen)),
            model=model, version=decision.version, reason=_reason(chosen), evidence=chosen,
            requested_at=at, data_since=min(d.window.start for d in chosen))
        self._open[model] = request
        self._last_at[model] = at
        self._evidence[key] = []
        return request


def _reason(evidence: tuple[DriftDecision, ...]) -> str:
    parts = []
    for kind in DriftKind:
        of_kind = [d for d in evidence if d.kind is kind]
        if not of_kind:
            continue
        if kind is DriftKind.DATA:
            parts.append("data drift on " + ", ".join(f"{d.feature} ({d.detector})" for d in of_kind))
        else:
            parts.append(f"{kind.value} drift (" + ", ".join(d.detector for d in of_kind) + ")")
    return "; ".join(parts)
