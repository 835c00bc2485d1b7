"""What the drift benchmark runs: every detector alone, and the default configuration.

A case is a name; ``build(name)`` makes a fresh ``fires(x) -> bool`` for it, so the
benchmark's worker processes only ever receive names.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from functools import cache
from typing import Any

from loopline_drift_detector.domain import (
    CategoricalProfile,
    DetectorSpec,
    ModelMonitor,
    MonitorConfig,
    NumericProfile,
    ReferenceProfile,
    ValidationMetrics,
)
from loopline_drift_detector.domain import synthetic
from loopline_drift_detector.domain.catalogue import concept_detector, data_detector, performance_detector

Fires = Callable[[Any], bool]

NOW = datetime(2025, 1, 1, tzinfo=timezone.utc)
VALIDATION = ValidationMetrics(accuracy=0.8)
CATEGORIES = ("a", "b", "c")
CATEGORY_P_BEFORE = (0.5, 0.3, 0.2)
CATEGORY_P_AFTER = (0.35, 0.3, 0.35)

#: case name -> (input: numeric / categorical / error, detector spec or None for the default monitor)
CASES: dict[str, tuple[str, DetectorSpec | None]] = {
    **{f"numeric/{n}": ("numeric", DetectorSpec(n)) for n in
       ("cusum", "ks", "psi", "js", "chi2", "adwin", "kswin", "page_hinkley")},
    "numeric/page_hinkley(delta=0.5,threshold=12,alpha=1)":
        ("numeric", DetectorSpec("page_hinkley", {"delta": 0.5, "threshold": 12.0, "alpha": 1.0})),
    "numeric/adwin(clock=1)": ("numeric", DetectorSpec("adwin", {"clock": 1})),
    "numeric/DEFAULT": ("numeric", None),
    **{f"categorical/{n}": ("categorical", DetectorSpec(n)) for n in ("chi2", "psi", "js")},
    "categorical/DEFAULT": ("categorical", None),
    **{f"error/{n}": ("error", DetectorSpec(n)) for n in
       ("ddm", "eddm", "hddm_a", "hddm_w", "adwin", "error_cusum", "accuracy_drop")},
    "error/hddm_a(drift_confidence=1e-4)": ("error", DetectorSpec("hddm_a", {"drift_confidence": 1e-4})),
    "error/DEFAULT": ("error", None),
}


@cache
def numeric_reference() -> NumericProfile:
    """The training data: 20k draws of N(0, 1), as a real profile would hold."""
    return NumericProfile.from_values(synthetic.stationary(seed=10**6, n=20_000))


@cache
def categorical_reference() -> CategoricalProfile:
    counts = {c: int(p * 20_000) for c, p in zip(CATEGORIES, CATEGORY_P_BEFORE)}
    return CategoricalProfile(20_000, counts)


def build(name: str, validation_accuracy: float = VALIDATION.accuracy) -> Fires:
    """A fresh detector (or default monitor) for ``name``; performance detectors are told
    the version's validation accuracy."""
    kind, spec = CASES[name]
    validation = ValidationMetrics(accuracy=validation_accuracy)
    if spec is None:
        return _default_monitor(kind, validation)
    if kind == "numeric":
        detector = data_detector(spec, numeric_reference())
    elif kind == "categorical":
        detector = data_detector(spec, categorical_reference())
    elif spec.name in ("error_cusum", "accuracy_drop"):
        detector = performance_detector(spec, validation)
    else:
        detector = concept_detector(spec)

    def fires(x: Any) -> bool:
        detector.update(x)
        return detector.drift_detected

    return fires


def _default_monitor(kind: str, validation: ValidationMetrics) -> Fires:
    if kind == "error":
        profile = ReferenceProfile({}, 0)
        monitor = ModelMonitor("bench", 1, profile, validation=validation)
        return lambda error: bool(monitor.observe_outcome(error, at=NOW))
    feature = numeric_reference() if kind == "numeric" else categorical_reference()
    monitor = ModelMonitor("bench", 1, ReferenceProfile({"x": feature}, feature.count), config=MonitorConfig())
    return lambda x: bool(monitor.observe_inputs({"x": x}, at=NOW))
