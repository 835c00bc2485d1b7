"""Retrain requests: minimum evidence, one open request per model, cooldown, stable ids."""

from __future__ import annotations

from datetime import timedelta

import pytest
from drift_cases import T0, VALIDATION

from loopline_drift_detector.domain import (
    DriftDecision,
    DriftKind,
    EvidenceWindow,
    ModelMonitor,
    ReferenceProfile,
    RetrainConfig,
    RetrainPolicy,
    checkpoint,
    synthetic,
)


def _drift(feature: str, minutes: float, kind: DriftKind = DriftKind.DATA, model: str = "churn",
           version: int = 3) -> DriftDecision:
    at = T0 + timedelta(minutes=minutes)
    return DriftDecision(f"id-{model}-{version}-{kind.value}-{feature}-{minutes}", model, version, kind, feature,
                         "cusum", 13.0, 12.0, EvidenceWindow(at - timedelta(minutes=1), at, 20, 1000, 0),
                         {}, {}, (), at, 0, f"feature/{feature}")


def test_one_drifting_feature_is_not_enough_two_are() -> None:
    policy = RetrainPolicy()
    assert policy.on_drift(_drift("age", 0)) is None
    assert policy.on_drift(_drift("age", 1)) is None  # the same feature again adds nothing
    request = policy.on_drift(_drift("plan", 2))
    assert request is not None and [d.feature for d in request.evidence] == ["age", "plan"]
    assert request.data_since == T0 - timedelta(minutes=1) and request.requested_at == T0 + timedelta(minutes=2)
    assert request.requested_by == "drift-detector" and policy.open_request("churn") == request


@pytest.mark.parametrize("kind", [DriftKind.CONCEPT, DriftKind.PERFORMANCE])
def test_a_drop_in_quality_is_enough_alone(kind: DriftKind) -> None:
    request = RetrainPolicy().on_drift(_drift("", 0, kind))
    assert request is not None and request.reason == f"{kind.value} drift (cusum)"


def test_evidence_must_be_recent_and_of_the_same_version() -> None:
    policy = RetrainPolicy()
    assert policy.on_drift(_drift("age", 0)) is None
    assert policy.on_drift(_drift("plan", 61)) is None  # more than the hour apart
    assert policy.on_drift(_drift("income", 62, version=4)) is None  # another version
    assert policy.on_drift(_drift("city", 63)) is not None  # plan and city


def test_one_open_request_per_model_then_a_cooldown() -> None:
    policy = RetrainPolicy(RetrainConfig(cooldown=timedelta(hours=6)))
    first = policy.on_drift(_drift("", 0, DriftKind.PERFORMANCE))
    assert first is not None
    assert policy.on_drift(_drift("", 60, DriftKind.PERFORMANCE)) is None  # open
    assert policy.on_drift(_drift("", 0, DriftKind.PERFORMANCE, model="other")) is not None  # per model
    policy.on_request_closed("churn", "not-this-one")
    assert policy.open_request("churn") == first
    policy.on_request_closed("churn", first.request_id)
    assert policy.on_drift(_drift("", 120, DriftKind.PERFORMANCE)) is None  # cooling down
    second = policy.on_drift(_drift("", 360, DriftKind.PERFORMANCE))
    assert second is not None and second.request_id != first.request_id


def test_a_request_nobody_closes_stops_blocking_after_its_timeout() -> None:
    policy = RetrainPolicy(RetrainConfig(request_timeout=timedelta(hours=24)))
    assert policy.on_drift(_drift("", 0, DriftKind.CONCEPT)) is not None
    assert policy.on_drift(_drift("", 23 * 60, DriftKind.CONCEPT)) is None
    assert policy.on_drift(_drift("", 24 * 60, DriftKind.CONCEPT)) is not None


def test_ids_come_from_the_evidence_so_a_replay_asks_with_the_same_id() -> None:
    decisions = [_drift("age", 0), _drift("plan", 1), _drift("", 500, DriftKind.CONCEPT)]
    policy, replay = RetrainPolicy(), RetrainPolicy()
    first = [policy.on_drift(d) for d in decisions]
    again = [replay.on_drift(d) for d in decisions]
    assert first == again and first[1] is not None
    other = RetrainPolicy()
    other.on_drift(_drift("age", 0))
    assert other.on_drift(_drift("income", 1)).request_id != first[1].request_id  # type: ignore[union-attr]


def test_persistent_drift_asks_once_per_cooldown_across_a_restart() -> None:
    # One labelled prediction a second; the error rate rises at 1000 s and stays up for 3 h.
    # The trainer closes each request at once, so only the cooldown spaces them.
    errors = synthetic.error_bits(seed=0, n_before=1000, n_after=3 * 3600).tolist()
    config = RetrainConfig(cooldown=timedelta(minutes=30))

    def run(monitor: ModelMonitor, policy: RetrainPolicy, start: int, stop: int) -> list:
        requests = []
        for i in range(start, stop):
            for decision in monitor.observe_outcome(errors[i], at=T0 + timedelta(seconds=i)):
                request = policy.on_drift(decision)
                if request is not None:
                    policy.on_request_closed(request.model, request.request_id)
                    requests.append(request)
        return requests

    def fresh() -> tuple[ModelMonitor, RetrainPolicy]:
        return ModelMonitor("churn", 3, ReferenceProfile({}, 0), validation=VALIDATION), RetrainPolicy(config)

    uninterrupted = run(*fresh(), 0, len(errors))
    times = [r.requested_at for r in uninterrupted]
    assert times[0] == T0 + timedelta(seconds=1037)
    assert len(times) == 6 and all(timedelta(minutes=30) <= b - a < timedelta(minutes=48)
                                   for a, b in zip(times, times[1:]))
    monitor, policy = fresh()
    before = run(monitor, policy, 0, 4000)
    monitor, policy = checkpoint.loads(checkpoint.dumps((monitor, policy), key=b"k"), key=b"k")
    assert before + run(monitor, policy, 4000, len(errors)) == uninterrupted


def test_a_concept_drift_request_asks_for_data_from_about_where_the_error_rate_rose() -> None:
    """The evidence of an error-stream detector starts at its change-point estimate, not a
    fixed window back: a retrain request's data_since leaves out the labels of before."""
    offsets = []
    for seed in range(15):
        monitor = ModelMonitor("churn", 3, ReferenceProfile({}, 0))  # no validation: concept drift alone
        policy, request = RetrainPolicy(), None
        for i, error in enumerate(synthetic.error_bits(seed, 1000, 1000, 0.2, 0.5).tolist()):
            for decision in monitor.observe_outcome(bool(error), at=T0 + timedelta(seconds=i)):
                request = request or policy.on_drift(decision)
            if request is not None:
                break
        assert request is not None
        offsets.append((request.data_since - (T0 + timedelta(seconds=1000))).total_seconds())
    offsets.sort()
    assert abs(offsets[len(offsets) // 2]) <= 10, offsets  # the median within 10 labels of the change
    assert sum(o < -40 for o in offsets) <= 2, offsets
