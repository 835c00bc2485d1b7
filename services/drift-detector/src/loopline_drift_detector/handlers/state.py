"""The detector state owned with one partition of loopline.drift-inputs.v1.

Every model is keyed to one partition, so a partition's state is complete for its
models: a monitor per (model, version), the retrain policy of those models, and the
next offset applied. It is checkpointed whole, with that offset.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from loopline_drift_detector.domain.monitor import ModelMonitor
from loopline_drift_detector.domain.retrain import RetrainConfig, RetrainPolicy


@dataclass
class Tracked:
    feature_names: tuple[str, ...]
    monitor: ModelMonitor
    #: False when the version has no reference profile: only its errors are watched.
    data_drift: bool
    #: Where each watched feature sits in a prediction's row (``ModelMonitor.columns``).
    columns: tuple[int, ...] = ()


@dataclass
class PartitionState:
    retrain: RetrainConfig
    next_offset: int = 0
    versions: dict[tuple[str, int], Tracked] = field(default_factory=dict)
    policy: RetrainPolicy = field(init=False)
    #: inputs_without_profile, decisions, retrain_requests, ...
    counts: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.policy = RetrainPolicy(self.retrain)
