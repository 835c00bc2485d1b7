"""What the drift-detector unit tests share: seeded references, detectors, streams.

A plain module (not a conftest) so that its name is unique in the test session."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from loopline_drift_detector.domain import CategoricalProfile, DetectorSpec, NumericProfile, ValidationMetrics
from loopline_drift_detector.domain import synthetic
from loopline_drift_detector.domain.catalogue import (
    CONCEPT,
    DATA,
    PERFORMANCE,
    concept_detector,
    data_detector,
    performance_detector,
)
from loopline_drift_detector.domain.detector import Detector

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
NUMERIC_REFERENCE = NumericProfile.from_values(synthetic.stationary(seed=10**6, n=20_000))
CATEGORIES = ("a", "b", "c")
P_BEFORE = (0.5, 0.3, 0.2)
P_AFTER = (0.2, 0.3, 0.5)
CATEGORICAL_REFERENCE = CategoricalProfile(20_000, {"a": 10_000, "b": 6_000, "c": 4_000})
VALIDATION = ValidationMetrics(accuracy=0.8)

NUMERIC = sorted(DATA)
CATEGORICAL = sorted(n for n, cls in DATA.items() if cls.accepts != "numeric")
ERRORS = sorted(CONCEPT) + sorted(PERFORMANCE)


def make(kind: str, name: str, **params: Any) -> Detector:
    """A detector of the catalogue with its default parameters (and the references above)."""
    spec = DetectorSpec(name, params)
    if kind == "numeric":
        return data_detector(spec, NUMERIC_REFERENCE)
    if kind == "categorical":
        return data_detector(spec, CATEGORICAL_REFERENCE)
    return performance_detector(spec, VALIDATION) if name in PERFORMANCE else concept_detector(spec)


def change_stream(kind: str, seed: int = 0, n_before: int = 1000, n_after: int = 1000) -> list[Any]:
    """The seeded change every detector must catch: 1σ mean shift, share shift, error 0.2 → 0.5."""
    if kind == "numeric":
        return synthetic.mean_shift(seed, n_before, n_after, 1.0).tolist()
    if kind == "categorical":
        return synthetic.categories(seed, CATEGORIES, P_BEFORE, P_AFTER, n_before, n_after)
    return synthetic.error_bits(seed, n_before, n_after, 0.2, 0.5).tolist()


def firings(detector: Detector, stream: list[Any]) -> list[int]:
    out = []
    for i, x in enumerate(stream):
        detector.update(x)
        if detector.drift_detected:
            out.append(i)
    return out

