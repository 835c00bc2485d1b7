"""Whole-model scenarios: which stream a change shows up in, and how fast the layer runs."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from loadtests.drift.cases import NOW, numeric_reference
from loopline_drift_detector.domain import (
    DriftKind,
    FeatureSpec,
    ModelMonitor,
    ReferenceProfile,
    ValidationMetrics,
    build_profile,
)
from loopline_drift_detector.domain import synthetic


def covariate_shift(seeds: int, n_features: int = 4) -> dict[str, Any]:
    """Feature f0 moves by 1σ, the others do not: only f0 may be flagged."""
    profile = ReferenceProfile({f"f{j}": numeric_reference() for j in range(n_features)}, 20_000)
    right, wrong, delays = 0, 0, []
    for seed in range(seeds):
        monitor = ModelMonitor("bench", 1, profile)
        for i, row in enumerate(synthetic.covariate_shift(seed, n_features, 0, 1000, 1000, 1.0)):
            for d in monitor.observe_inputs(row, at=NOW):
                if d.feature == "f0" and i >= 1000:
                    right += 1
                    delays.append(i - 999)
                else:
                    wrong += 1
    return {"seeds": seeds, "features": n_features, "shifted_feature_flagged": right,
            "other_decisions": wrong, "median_delay": float(np.median(delays)) if delays else None}


def concept_switch(seeds: int) -> dict[str, Any]:
    """river's SEA: the labelling rule changes, the inputs do not; no data drift may be flagged."""
    rows, _ = synthetic.concept_switch(seed=10**6, n_before=20_000, n_after=0)
    profile = build_profile(rows, [FeatureSpec(f"x{k}") for k in range(3)])
    data, first_error_decisions = 0, []
    for seed in range(seeds):
        monitor = ModelMonitor("bench", 1, profile, validation=ValidationMetrics(accuracy=0.9))
        rows, errors = synthetic.concept_switch(seed, 1000, 2000)
        first = None
        for i, (row, error) in enumerate(zip(rows, errors.tolist())):
            data += len(monitor.observe_inputs(row, at=NOW))
            kinds = [d.kind for d in monitor.observe_outcome(error, at=NOW)]
            if first is None and i >= 1000 and kinds:
                first = (i - 999, kinds[0])
        if first:
            first_error_decisions.append(first)
    delays = [d for d, _ in first_error_decisions]
    return {"seeds": seeds, "error_rate": "0.1 -> 0.2", "data_decisions": data,
            "detected": len(delays), "median_delay": float(np.median(delays)) if delays else None,
            "first_kind": {k.value: sum(1 for _, kk in first_error_decisions if kk is k) for k in DriftKind}}


def monitor_events_per_second(n_numeric: int, n_categorical: int, events: int = 10_000) -> dict[str, Any]:
    """Default configuration: every input feature plus the error and performance streams."""
    rng = np.random.RandomState(3)
    train = [{**{f"n{j}": v for j, v in enumerate(row)}, **{f"c{j}": "abc"[k % 3] for j in range(n_categorical)}}
             for row, k in zip(rng.normal(size=(5000, n_numeric)).tolist(), range(5000))]
    specs = [FeatureSpec(f"n{j}") for j in range(n_numeric)] + \
            [FeatureSpec(f"c{j}", "categorical") for j in range(n_categorical)]
    profile = build_profile(train, specs)
    live = [{**{f"n{j}": v for j, v in enumerate(row)}, **{f"c{j}": "abc"[k % 3] for j in range(n_categorical)}}
            for row, k in zip(rng.normal(size=(events, n_numeric)).tolist(), rng.randint(0, 3, events))]
    errors = (rng.random_sample(events) < 0.2).tolist()
    best = 0.0
    for _ in range(3):
        monitor = ModelMonitor("bench", 1, profile, validation=ValidationMetrics(accuracy=0.8))
        start = time.perf_counter()
        for row, error in zip(live, errors):
            monitor.observe_inputs(row, at=NOW, trace_id="t")
            monitor.observe_outcome(error, at=NOW)
        best = max(best, events / (time.perf_counter() - start))
    streams = n_numeric + n_categorical + 2
    return {"numeric_features": n_numeric, "categorical_features": n_categorical,
            "events_per_s": round(best), "stream_updates_per_s": round(best * streams)}
