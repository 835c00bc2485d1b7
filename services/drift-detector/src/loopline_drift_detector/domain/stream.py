"""One monitored stream: a feature of a version, or its error stream, and its detectors.

The stream guards and counts its input, applies warm-up, feeds every detector, and
turns firings into at most one decision per ``realert_after`` values: the first
detector (in configuration order) that fires, once ``min_votes`` of them agree
within ``vote_window`` and the stream has seen ``min_samples``.
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from loopline_drift_detector.domain.config import MonitorConfig
from loopline_drift_detector.domain.decisions import DriftDecision, DriftKind, EvidenceWindow, drift_id
from loopline_drift_detector.domain.detector import Detector, Guard
from loopline_drift_detector.domain.explain import explain
from loopline_core.profiles.reference import FeatureProfile
from loopline_core.profiles.values import NumberGuard, ValueCounts

#: Times kept to date the start of an evidence window (POSIX seconds: a checkpoint
#: pickles floats about 50 times faster than datetimes).
TIMES_KEPT = 2000
#: The recent values described in the evidence: the detector's window, at least this many.
EXPLAIN_AT_LEAST = 50


class Stream:
    def __init__(self, *, model: str, version: int, key: str, kind: DriftKind, feature: str,
                 guard: Guard, detectors: Sequence[Detector], config: MonitorConfig,
                 profile: FeatureProfile | None = None) -> None:
        self.model, self.version, self.key, self.kind, self.feature = model, version, key, kind, feature
        self.config = config
        self.profile = profile
        self._guard = guard
        self._detectors = list(detectors)
        self._valid = 0  # valid values, warm-up included
        self._n = 0  # values fed to the detectors
        self._times: deque[float] = deque(maxlen=TIMES_KEPT)
        self._recent: deque[Any] = deque(maxlen=config.explain_window)
        self._last_fired = [-1] * len(self._detectors)
        self._last_decision: int | None = None
        self._quiet_firings = 0

    @property
    def counts(self) -> dict[str, int]:
        return self._guard.counts.as_dict()

    def offer(self, x: Any, at: float, traces: Sequence[str] = ()) -> DriftDecision | None:
        """One value at ``at`` (POSIX seconds); ``traces`` (the latest trace ids) is only
        read when a decision is made."""
        value = self._guard.accept(x)
        if value is None:
            return None
        self._valid += 1
        if self._valid <= self.config.warmup:
            return None
        index = self._n
        self._n += 1
        self._times.append(at)
        self._recent.append(value)
        first = None
        for i, detector in enumerate(self._detectors):
            # Detector._update_checked, inlined (the hot path): restart after a firing, count, learn.
            if detector._fired:
                detector._restart()
            detector._n += 1
            if detector._learn(value):
                detector._drift = detector._fired = True
                self._last_fired[i] = index
                first = detector if first is None else first
            else:
                detector._drift = detector._fired = False
        if first is None or self._n < self.config.min_samples:
            return None
        window = self.config.vote_window
        if sum(0 <= index - f < window for f in self._last_fired) < self.config.min_votes:
            return None
        if self._last_decision is not None and index - self._last_decision < self.config.realert_after:
            self._quiet_firings += 1
            return None
        self._last_decision = index
        return self._decide(first, index, at, tuple(traces))

    def offer_many(self, xs: Sequence[Any], ats: Sequence[float],
                   traces: Callable[[int], Sequence[str]]) -> list[tuple[int, DriftDecision]]:
        """``offer`` for each value of ``xs`` in turn (``ats``: their times), with the
        same state, counts and decisions, a batch at a time: each detector learns the
        batch up to its next firing (``Detector._learn_many``), and the firings are
        taken in order. Returns (position in ``xs``, decision); ``traces(i)``: the
        latest trace ids as they were when the value at ``i`` came (read only for a
        decision). ``xs`` may be a float64 numpy array: it is guarded at once."""
        guard = self._guard
        before = vars(guard.counts).copy()  # the counts before the batch (a decision replays from them)
        if type(guard) is NumberGuard and type(xs) is np.ndarray:
            positions, values = _accept_array(guard, xs)
        else:
            accept = guard.accept
            positions, values = [], []
            for i, x in enumerate(xs):
                value = accept(x)
                if value is not None:
                    positions.append(i)
                    values.append(value)
        if not values:
            return []
        skip = self.config.warmup - self._valid
        self._valid += len(values)
        if skip > 0:
            positions, values = positions[skip:], values[skip:]
            if not values:
                return []
        detectors = self._detectors
        m, base = len(values), self._n
        valid_ats = ats if len(positions) == len(ats) else [ats[p] for p in positions]
        fires = [d._learn_many(values, 0) for d in detectors]
        out: list[tuple[int, DriftDecision]] = []
        kept = 0  # values[:kept] are in the times and recent values
        times, recent = self._times, self._recent
        config = self.config
        while True:
            i = min(fires)
            if i >= m:
                break
            index = base + i
            first = None
            for j, detector in enumerate(detectors):
                if fires[j] == i:
                    self._last_fired[j] = index
                    first = detector if first is None else first
            if index + 1 >= config.min_samples and sum(
                    0 <= index - f < config.vote_window for f in self._last_fired) >= config.min_votes:
                if self._last_decision is not None and index - self._last_decision < config.realert_after:
                    self._quiet_firings += 1
                else:
                    self._last_decision = index
                    raw = positions[i]
                    times.extend(valid_ats[kept:i + 1])
                    recent.extend(values[kept:i + 1])
                    kept = i + 1
                    counts = _replayed(guard, before, xs, raw)
                    assert first is not None
                    out.append((raw, self._decide(first, index, ats[raw], tuple(traces(raw)), counts)))
            for j, detector in enumerate(detectors):
                if fires[j] == i:
                    fires[j] = detector._learn_many(values, i + 1)
        times.extend(valid_ats[kept:] if kept else valid_ats)
        recent.extend(values[kept:])
        self._n = base + m
        return out

    def _decide(self, detector: Detector, index: int, at: float, traces: tuple[str, ...],
                counts: ValueCounts | None = None) -> DriftDecision:
        s = detector.summary()
        times = self._times
        start = _datetime(times[-s.window] if 0 < s.window <= len(times) else (times[0] if s.window else at))
        end = _datetime(at)
        reference = dict(s.reference)
        current = dict(s.current)
        if self.profile is not None:
            reference.update({f"profile.{k}": v for k, v in self.profile.summary().items()})
            recent = list(self._recent)[-max(s.window, EXPLAIN_AT_LEAST):]
            current.update({f"recent.{k}": v for k, v in explain(self.profile, recent).items()})
        value_counts = self.counts if counts is None else counts.as_dict()
        current.update({f"values.{k}": float(v) for k, v in value_counts.items()})
        current["firings_held_back"] = float(self._quiet_firings)
        self._quiet_firings = 0
        return DriftDecision(
            drift_id=drift_id(self.model, self.version, self.key, detector.name, index),
            model=self.model, version=self.version, kind=self.kind, feature=self.feature,
            detector=detector.name, statistic=s.statistic, threshold=s.threshold,
            window=EvidenceWindow(start, end, s.window, s.reference_count, s.change_index),
            reference_summary=reference, current_summary=current,
            sample_trace_ids=traces, detected_at=end, detection_index=index, stream=self.key)


def _datetime(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _accept_array(guard: NumberGuard, xs: np.ndarray) -> tuple[Sequence[int], list[float]]:
    """``NumberGuard.accept`` over a float64 array at once: the same counts, the valid
    values as floats and where they were."""
    nan = np.isnan(xs)
    inf = np.isinf(xs)
    valid = (xs >= guard.valid_min) & (xs <= guard.valid_max) & ~inf  # NaN compares False
    counts = guard.counts
    n_valid = int(np.count_nonzero(valid))
    counts.valid += n_valid
    if n_valid == len(xs):
        return range(len(xs)), xs.tolist()
    n_nan, n_inf = int(np.count_nonzero(nan)), int(np.count_nonzero(inf))
    counts.nan += n_nan
    counts.inf += n_inf
    counts.out_of_range += len(xs) - n_valid - n_nan - n_inf
    return np.flatnonzero(valid).tolist(), xs[valid].tolist()


def _replayed(guard: Any, before: dict[str, int], xs: Sequence[Any], last: int) -> ValueCounts:
    """The guard's counts as they were once it had taken ``xs[:last + 1]`` (a decision's evidence)."""
    twin = copy.copy(guard)
    twin.counts = ValueCounts(**before)
    for x in (xs[:last + 1].tolist() if type(xs) is np.ndarray else xs[:last + 1]):
        twin.accept(x)
    return twin.counts
