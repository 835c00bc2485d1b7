"""What the detector layer decides: drift found, retraining asked for.

These mirror DriftDetected and RetrainRequested (protos/loopline/events/v1/drift.proto);
the service maps them to protobuf. Ids are UUIDv5 of the evidence, so replaying the
same stream from a checkpoint gives the same ids, and a consumer's inbox drops the
repeat.

>>> drift_id("churn", 3, "feature/age", "cusum", 1016)
'da48c4ff-662c-505c-8025-8c555b18e62a'
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

#: Fixed forever: changing it changes every id, and replays would ask again.
NAMESPACE = uuid.UUID("6f1f3c1e-8f0d-4a0e-9d47-3b1f2a1c7d55")


class DriftKind(enum.Enum):
    DATA = "data"
    CONCEPT = "concept"
    PERFORMANCE = "performance"


@dataclass(frozen=True)
class EvidenceWindow:
    """The samples a detector decided on. Indices count a stream's valid samples."""

    #: The earliest retained time when the window is longer than what the stream keeps.
    start: datetime
    end: datetime
    sample_count: int
    reference_count: int
    change_index: int


@dataclass(frozen=True)
class DriftDecision:
    drift_id: str
    model: str
    version: int
    kind: DriftKind
    #: Empty for concept and performance drift.
    feature: str
    detector: str
    statistic: float
    threshold: float
    window: EvidenceWindow
    reference_summary: Mapping[str, float]
    current_summary: Mapping[str, float]
    sample_trace_ids: tuple[str, ...]
    detected_at: datetime
    #: The stream's sample index at which the detector fired (part of the id).
    detection_index: int
    stream: str


@dataclass(frozen=True)
class RetrainRequest:
    request_id: str
    model: str
    version: int
    reason: str
    evidence: tuple[DriftDecision, ...]
    requested_at: datetime
    #: Labelled data since this time is the core of the new training set.
    data_since: datetime
    requested_by: str = "drift-detector"


def drift_id(model: str, version: int, stream: str, detector: str, detection_index: int) -> str:
    return str(uuid.uuid5(NAMESPACE, f"drift|{model}|{version}|{stream}|{detector}|{detection_index}"))


def request_id(model: str, version: int, drift_ids: Iterable[str]) -> str:
    return str(uuid.uuid5(NAMESPACE, f"retrain|{model}|{version}|{'|'.join(sorted(drift_ids))}"))
