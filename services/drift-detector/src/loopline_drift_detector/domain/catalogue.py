"""Detectors by name: what a per-model configuration may ask for.

>>> from loopline_core.profiles.reference import NumericProfile
>>> data_detector(DetectorSpec("cusum", {"h": 10.0}), NumericProfile.from_values([1.0, 2.0, 3.0]))
CUSUM(k=0.5, h=10.0)
>>> performance_detector(DetectorSpec("error_cusum"), ValidationMetrics(accuracy=0.8))
ErrorRateCUSUM(validation_error=0.2, increase=0.25, h=11.0)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from loopline_core.errors import InvalidArgument

from loopline_drift_detector.domain.binned import WindowedChiSquare, WindowedJS, WindowedPSI
from loopline_drift_detector.domain.cusum import CUSUM
from loopline_drift_detector.domain.detector import Detector
from loopline_drift_detector.domain.performance import AccuracyDrop, ErrorRateCUSUM
from loopline_core.profiles.reference import FeatureProfile, NumericProfile
from loopline_drift_detector.domain.river_concept import (
    ADWINErrorDetector,
    DDMDetector,
    EDDMDetector,
    HDDMADetector,
    HDDMWDetector,
)
from loopline_drift_detector.domain.river_data import ADWINDetector, KSWINDetector, PageHinkleyDetector
from loopline_drift_detector.domain.windowed_ks import WindowedKS


@dataclass(frozen=True)
class DetectorSpec:
    name: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ValidationMetrics:
    """What the version scored on its validation set (from the registry)."""

    accuracy: float

    #: Keys of a version's ``metrics`` read as validation accuracy, first found wins.
    KEYS: ClassVar[tuple[str, ...]] = ("val_accuracy", "validation_accuracy", "accuracy")

    def __post_init__(self) -> None:
        if not 0.0 < self.accuracy <= 1.0:
            raise InvalidArgument("accuracy must be in (0, 1]", field="validation.accuracy")

    @classmethod
    def from_metrics(cls, metrics: Mapping[str, float]) -> ValidationMetrics | None:
        """From a registered version's metrics; None when it has none to compare with.

        >>> ValidationMetrics.from_metrics({"loss": 0.3, "val_accuracy": 0.91})
        ValidationMetrics(accuracy=0.91)
        """
        return next((cls(float(metrics[k])) for k in cls.KEYS if k in metrics), None)


DATA: Mapping[str, type[Detector]] = {
    d.name: d for d in (CUSUM, WindowedKS, WindowedPSI, WindowedJS, WindowedChiSquare,
                        ADWINDetector, KSWINDetector, PageHinkleyDetector)}
CONCEPT: Mapping[str, type[Detector]] = {
    d.name: d for d in (DDMDetector, EDDMDetector, HDDMADetector, HDDMWDetector, ADWINErrorDetector)}
PERFORMANCE: Mapping[str, Callable[..., Detector]] = {
    "error_cusum": lambda v, **p: ErrorRateCUSUM(round(1.0 - v.accuracy, 12), **p),
    "accuracy_drop": lambda v, **p: AccuracyDrop(v.accuracy, **p),
}


def data_detector(spec: DetectorSpec, profile: FeatureProfile) -> Detector:
    cls = _lookup(DATA, spec, "data")
    if cls.accepts == "numeric" and not isinstance(profile, NumericProfile):
        raise InvalidArgument(f"detector {spec.name!r} needs a numeric feature", field="detectors")
    return _build(cls, spec, profile)


def concept_detector(spec: DetectorSpec) -> Detector:
    return _build(_lookup(CONCEPT, spec, "concept"), spec)


def performance_detector(spec: DetectorSpec, validation: ValidationMetrics) -> Detector:
    return _build(_lookup(PERFORMANCE, spec, "performance"), spec, validation)


def _lookup(table: Mapping[str, Any], spec: DetectorSpec, kind: str) -> Any:
    if spec.name not in table:
        raise InvalidArgument(f"unknown {kind} detector {spec.name!r}; known: {', '.join(sorted(table))}",
                              field="detectors")
    return table[spec.name]


def _build(factory: Callable[..., Detector], spec: DetectorSpec, *args: Any) -> Detector:
    try:
        return factory(*args, **spec.params)
    except TypeError as e:
        raise InvalidArgument(f"bad parameters for {spec.name!r}: {e}", field="detectors") from e
