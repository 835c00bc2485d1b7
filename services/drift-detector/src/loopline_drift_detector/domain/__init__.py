"""The statistical core of the drift detector: profiles, detectors, decisions.

Pure and synchronous: no asyncio transport, protobuf, Kafka or SQL here. The
service's handlers feed a ``ModelMonitor`` per (model, version) and a
``RetrainPolicy``, map their decisions to events, and checkpoint both.
"""

from loopline_drift_detector.domain.catalogue import DetectorSpec, ValidationMetrics
from loopline_drift_detector.domain.config import MonitorConfig
from loopline_drift_detector.domain.decisions import DriftDecision, DriftKind, EvidenceWindow, RetrainRequest
from loopline_drift_detector.domain.detector import Detector, Summary
from loopline_drift_detector.domain.monitor import ModelMonitor
from loopline_core.profiles.reference import CategoricalProfile, NumericProfile, ReferenceProfile
from loopline_core.profiles.builder import FeatureSpec, build_profile
from loopline_drift_detector.domain.retrain import RetrainConfig, RetrainPolicy

__all__ = [
    "CategoricalProfile", "Detector", "DetectorSpec", "DriftDecision", "DriftKind", "EvidenceWindow",
    "FeatureSpec", "ModelMonitor", "MonitorConfig", "NumericProfile", "ReferenceProfile", "RetrainConfig",
    "RetrainPolicy", "RetrainRequest", "Summary", "ValidationMetrics", "build_profile",
]
