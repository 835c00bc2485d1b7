"""The event stream of the service benchmark, shared by the driver and the served process.

``MODELS`` models, each one version with ``FEATURES`` numeric features and a seeded
reference profile; predictions (keyed by prediction id, as the gateway logs them)
and labelled predictions for every second one (keyed by model, as the feedback
collector emits them). The last model's inputs shift by 1σ half-way, so that the
measured path includes decisions, their outbox and their publication.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache

import numpy as np
from aiokafka.partitioner import murmur2
from google.protobuf.message import Message
from loopline_core.profiles.reference import NumericProfile, ReferenceProfile

from loopline_drift_detector.adapters.registry import InMemoryVersions, VersionInfo
from loopline_drift_detector.domain.catalogue import ValidationMetrics
from loopline_drift_detector.synthetic_events import labeled, prediction

#: Two per partition of loopline.drift-inputs.v1 (3 partitions, murmur2 as every Kafka client).
MODELS = ("bench-churn", "bench-fraud", "bench-credit", "bench-search", "bench-ranker", "bench-spam")
FEATURES = tuple(f"f{j}" for j in range(4))
T0 = datetime(2025, 6, 1, tzinfo=UTC)


@cache
def profile() -> ReferenceProfile:
    rng = np.random.default_rng(20_000)
    return ReferenceProfile({f: NumericProfile.from_values(rng.normal(0.0, 1.0, 20_000)) for f in FEATURES}, 20_000)


def versions() -> InMemoryVersions:
    return InMemoryVersions({(m, 1): VersionInfo(m, 1, FEATURES, profile(), ValidationMetrics(0.8))
                             for m in MODELS})


def partition_of(key: str, partitions: int) -> int:
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def stream(predictions: int, seed: int = 1) -> list[tuple[str, str, Message]]:
    """(topic kind "predictions" or "labeled", key, message) in publication order:
    ``predictions`` predictions round-robin over the models, a label after every second."""
    rng = np.random.default_rng(seed)
    rows = rng.normal(0.0, 1.0, (predictions, len(FEATURES)))
    drifting = np.arange(predictions) % len(MODELS) == len(MODELS) - 1
    rows[drifting & (np.arange(predictions) >= predictions // 2)] += 1.0
    wrong = rng.random(predictions) < 0.2
    out: list[tuple[str, str, Message]] = []
    for i, row in enumerate(rows.tolist()):
        model, at = MODELS[i % len(MODELS)], T0 + timedelta(milliseconds=10 * i)
        p = prediction(model, 1, row, at=at)
        out.append(("predictions", p.prediction_id, p))
        if i % 2:
            out.append(("labeled", model, labeled(model, 1, not bool(wrong[i]), at=at)))
    return out
