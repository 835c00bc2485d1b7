"""Everything watched for one model version: its features, its errors, its quality.

>>> from datetime import datetime, timezone
>>> from loopline_core.profiles.reference import NumericProfile, ReferenceProfile
>>> profile = ReferenceProfile({"x": NumericProfile.from_values([i / 100 for i in range(-300, 301)])}, 601)
>>> monitor = ModelMonitor("churn", 3, profile)
>>> now = datetime(2025, 1, 1, tzinfo=timezone.utc)
>>> decisions = [d for i in range(200) for d in monitor.observe_inputs({"x": 2.0}, at=now, trace_id=f"t{i}")]
>>> [(d.kind.value, d.feature, d.detector, d.detection_index) for d in decisions]
[('data', 'x', 'cusum', 55)]
>>> monitor.observe_inputs({"x": float("nan")}, at=now), monitor.value_counts()["x"]["nan"]
([], 1)

A row in signature order is cheaper than a mapping (no dict per event), and a time
may be given as POSIX seconds:

>>> columns = monitor.columns(("y", "x"))
>>> monitor.observe_row([0.0, float("inf")], columns, at=now.timestamp()), monitor.value_counts()["x"]["inf"]
([], 1)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np

from loopline_drift_detector.domain.catalogue import (
    ValidationMetrics,
    concept_detector,
    data_detector,
    performance_detector,
)
from loopline_drift_detector.domain.config import MonitorConfig
from loopline_drift_detector.domain.decisions import DriftDecision, DriftKind
from loopline_core.profiles.reference import NumericProfile, ReferenceProfile
from loopline_drift_detector.domain.stream import Stream
from loopline_core.profiles.values import CategoryGuard, ErrorGuard, NumberGuard


class ModelMonitor:
    """Detector state of one (model, version); checkpoint it whole (see ``checkpoint``)."""

    def __init__(self, model: str, version: int, profile: ReferenceProfile, *,
                 config: MonitorConfig | None = None, validation: ValidationMetrics | None = None) -> None:
        self.model, self.version = model, version
        self.config = config = config or MonitorConfig()
        self.validation = validation
        self._traces: deque[str] = deque(maxlen=config.evidence_traces)
        self._outcome_traces: deque[str] = deque(maxlen=config.evidence_traces)
        self._features: list[tuple[str, Stream]] = []
        for name, p in profile.features.items():
            numeric = isinstance(p, NumericProfile)
            specs = config.features.get(name, config.numeric if numeric else config.categorical)
            guard = NumberGuard(p.valid_min, p.valid_max) if isinstance(p, NumericProfile) else CategoryGuard()
            detectors = [data_detector(s, p) for s in specs]
            self._features.append((name, self._stream(f"feature/{name}", DriftKind.DATA, name, guard,
                                                      detectors, p)))
        self._error_streams = []
        if config.concept:
            self._error_streams.append(self._stream("errors/concept", DriftKind.CONCEPT, "", ErrorGuard(),
                                                    [concept_detector(s) for s in config.concept]))
        if config.performance and validation is not None:
            detectors = [performance_detector(s, validation) for s in config.performance]
            self._error_streams.append(self._stream("errors/performance", DriftKind.PERFORMANCE, "",
                                                    ErrorGuard(), detectors))

    def _stream(self, key: str, kind: DriftKind, feature: str, guard: Any, detectors: list[Any],
                profile: Any = None) -> Stream:
        return Stream(model=self.model, version=self.version, key=key, kind=kind, feature=feature,
                      guard=guard, detectors=detectors, config=self.config, profile=profile)

    def observe_inputs(self, inputs: Mapping[str, Any], *, at: datetime | float,
                       trace_id: str = "") -> list[DriftDecision]:
        """One prediction's inputs by feature name; a feature left out counts as missing.
        ``at``: the event time, an aware datetime or POSIX seconds."""
        if trace_id:
            self._traces.append(trace_id)
        ts = _seconds(at)
        decisions = []
        for name, stream in self._features:
            decision = stream.offer(inputs.get(name), ts, self._traces)
            if decision is not None:
                decisions.append(decision)
        return decisions

    def columns(self, feature_names: Sequence[str]) -> tuple[int, ...]:
        """Where each watched feature sits in a row laid out as ``feature_names`` (-1: absent)."""
        where = {name: i for i, name in enumerate(feature_names)}
        return tuple(where.get(name, -1) for name, _ in self._features)

    def observe_row(self, row: Sequence[Any], columns: Sequence[int], *, at: datetime | float,
                    trace_id: str = "") -> list[DriftDecision]:
        """``observe_inputs`` for a row read with ``columns`` (from ``columns()``)."""
        if trace_id:
            self._traces.append(trace_id)
        ts = _seconds(at)
        decisions = []
        for (_, stream), column in zip(self._features, columns):
            decision = stream.offer(row[column] if column >= 0 else None, ts, self._traces)
            if decision is not None:
                decisions.append(decision)
        return decisions

    def observe_rows(self, rows: np.ndarray, columns: Sequence[int], ats: Sequence[float],
                     trace_ids: Sequence[str]) -> list[tuple[int, DriftDecision]]:
        """``observe_row`` for each row of ``rows`` (float64, one row per prediction) in
        turn, at ``ats`` (POSIX seconds), feature by feature over the whole batch: the
        same state and the same decisions, in the same order, each with its row."""
        found: list[tuple[int, int, DriftDecision]] = []
        traces = _TracesAt(self._traces, trace_ids)
        missing = [None] * len(ats)
        for position, ((_, stream), column) in enumerate(zip(self._features, columns)):
            xs = rows[:, column] if column >= 0 else missing
            found += [(row, position, d) for row, d in stream.offer_many(xs, ats, traces)]
        _keep_latest(self._traces, trace_ids)
        found.sort(key=lambda f: (f[0], f[1]))
        return [(row, d) for row, _, d in found]

    def observe_outcomes(self, errors: Sequence[Any], ats: Sequence[float],
                         trace_ids: Sequence[str]) -> list[tuple[int, DriftDecision]]:
        """``observe_outcome`` for each error in turn: the same state and decisions, in the
        same order, each with its position."""
        found: list[tuple[int, int, DriftDecision]] = []
        traces = _TracesAt(self._outcome_traces, trace_ids)
        for position, stream in enumerate(self._error_streams):
            found += [(row, position, d) for row, d in stream.offer_many(errors, ats, traces)]
        _keep_latest(self._outcome_traces, trace_ids)
        found.sort(key=lambda f: (f[0], f[1]))
        return [(row, d) for row, _, d in found]

    def observe_outcome(self, error: Any, *, at: datetime | float, trace_id: str = "") -> list[DriftDecision]:
        """Whether a labelled prediction was wrong (``error=True``), never the other way round."""
        if trace_id:
            self._outcome_traces.append(trace_id)
        ts = _seconds(at)
        decisions = []
        for stream in self._error_streams:
            decision = stream.offer(error, ts, self._outcome_traces)
            if decision is not None:
                decisions.append(decision)
        return decisions

    def value_counts(self) -> dict[str, dict[str, int]]:
        counts = {name: stream.counts for name, stream in self._features}
        if self._error_streams:
            counts["errors"] = self._error_streams[0].counts
        return counts


def _keep_latest(kept: deque[str], trace_ids: Sequence[str]) -> None:
    """``kept.extend(t for t in trace_ids if t)``, reading only the latest that stay."""
    size = kept.maxlen
    if not size:
        return
    latest: list[str] = []
    for j in range(len(trace_ids) - 1, -1, -1):
        t = trace_ids[j]
        if t:
            latest.append(t)
            if len(latest) == size:
                break
    kept.extend(reversed(latest))


class _TracesAt:
    """The latest trace ids as a deque of them held when a batch's ``i``-th event came."""

    def __init__(self, kept: deque[str], batch: Sequence[str]) -> None:
        self._kept, self._batch = kept, batch

    def __call__(self, i: int) -> tuple[str, ...]:
        size = self._kept.maxlen
        if not size:
            return ()
        latest: list[str] = []
        batch, j = self._batch, i
        while j >= 0 and len(latest) < size:
            if batch[j]:
                latest.append(batch[j])
            j -= 1
        latest.reverse()
        need = size - len(latest)
        if need > 0 and self._kept:
            latest = list(self._kept)[-need:] + latest
        return tuple(latest)


def _seconds(at: datetime | float) -> float:
    if type(at) is float:
        return at
    if isinstance(at, datetime):
        if at.tzinfo is None:
            raise ValueError("an event time must carry its UTC offset")
        return at.timestamp()
    return float(at)
