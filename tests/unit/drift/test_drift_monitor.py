"""A model's monitor: decisions with evidence, warm-up, minimum samples, re-alerts,
votes, and a checkpoint that resumes without a blind spot or a repeated alert."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from drift_cases import CATEGORICAL_REFERENCE, NUMERIC_REFERENCE, T0, VALIDATION
from loopline_core.errors import InvalidArgument

from loopline_drift_detector.domain import (
    DetectorSpec,
    DriftKind,
    FeatureSpec,
    ModelMonitor,
    MonitorConfig,
    ReferenceProfile,
    ValidationMetrics,
    build_profile,
    checkpoint,
    synthetic,
)

FOUR = ReferenceProfile({f"f{j}": NUMERIC_REFERENCE for j in range(4)}, NUMERIC_REFERENCE.count)


def _at(i: int) -> Any:
    return T0 + timedelta(seconds=i)


def _feed(monitor: ModelMonitor, rows: list[dict[str, Any]], errors: list[bool] | None = None,
          start: int = 0) -> list[Any]:
    decisions = []
    for i, row in enumerate(rows, start):
        decisions += monitor.observe_inputs(row, at=_at(i), trace_id=f"trace-{i}")
        if errors is not None:
            decisions += monitor.observe_outcome(errors[i - start], at=_at(i), trace_id=f"trace-{i}")
    return decisions


def test_a_covariate_shift_flags_that_feature_only_with_its_evidence() -> None:
    rows = synthetic.covariate_shift(seed=0, n_features=4, shifted=2, n_before=1000, n_after=1000)
    rows[10]["f2"] = math.nan
    del rows[11]["f0"]
    decisions = _feed(ModelMonitor("churn", 3, FOUR), rows)
    assert [(d.kind, d.feature, d.detector, d.detection_index) for d in decisions] == \
        [(DriftKind.DATA, "f2", "cusum", 1038)]  # indices count valid values: one NaN went before
    d = decisions[0]
    assert d.model == "churn" and d.version == 3 and d.stream == "feature/f2"
    assert d.statistic > d.threshold == 13.0 and d.detected_at == _at(1039)
    assert d.window.change_index == 998 and d.window.sample_count == 41
    assert d.window.start == _at(999) and d.window.end == d.detected_at
    assert d.window.reference_count == NUMERIC_REFERENCE.count
    assert d.sample_trace_ids == tuple(f"trace-{i}" for i in range(1035, 1040))
    assert d.reference_summary["profile.mean"] == pytest.approx(0.0, abs=0.01)
    assert d.current_summary["mean"] > 0.7 and d.current_summary["recent.mean"] > 0.5
    assert d.current_summary["recent.count"] == 50 and d.current_summary["recent.psi"] > 0.2
    assert d.current_summary["values.nan"] == 1.0 and d.current_summary["values.valid"] == 1039.0


def test_a_concept_switch_with_unchanged_inputs_is_concept_or_performance_drift_only() -> None:
    train, _ = synthetic.concept_switch(seed=99, n_before=20_000, n_after=0)
    profile = build_profile(train, [FeatureSpec(f"x{k}") for k in range(3)])
    rows, errors = synthetic.concept_switch(seed=0, n_before=1000, n_after=3000)
    monitor = ModelMonitor("sea", 1, profile, validation=ValidationMetrics(accuracy=0.9))
    decisions = _feed(monitor, rows, errors.tolist())
    # Error rate 0.1 -> 0.2 at 1000; the inputs stay uniform, so no data drift.
    assert [(d.kind, d.detector, d.detection_index) for d in decisions] == [
        (DriftKind.PERFORMANCE, "error_cusum", 1157), (DriftKind.CONCEPT, "hddm_a", 1445),
        (DriftKind.PERFORMANCE, "error_cusum", 2420), (DriftKind.PERFORMANCE, "error_cusum", 3703)]


def test_an_error_rate_rise_gives_one_decision_per_kind_and_realert_window() -> None:
    errors = synthetic.error_bits(seed=0, n_before=1000, n_after=3000).tolist()
    monitor = ModelMonitor("churn", 3, ReferenceProfile({}, 0), validation=VALIDATION)
    decisions = _feed(monitor, [{}] * len(errors), errors)
    # HDDM_A compares the stream with its own past, so it settles on the new rate; the
    # performance CUSUM is anchored to validation, so it keeps firing, once per realert_after.
    assert [(d.kind, d.detector, d.detection_index) for d in decisions] == [
        (DriftKind.PERFORMANCE, "error_cusum", 1037), (DriftKind.CONCEPT, "hddm_a", 1038),
        (DriftKind.PERFORMANCE, "error_cusum", 2061), (DriftKind.PERFORMANCE, "error_cusum", 3073)]
    assert [d.current_summary["firings_held_back"] for d in decisions] == [0, 0, 18, 19]
    assert decisions[0].feature == "" and decisions[0].reference_summary == {"error_rate": 0.2}


def test_without_validation_metrics_there_is_no_performance_stream() -> None:
    errors = synthetic.error_bits(seed=0, n_before=1000, n_after=1000).tolist()
    monitor = ModelMonitor("churn", 3, ReferenceProfile({}, 0))
    assert {d.kind for d in _feed(monitor, [{}] * len(errors), errors)} == {DriftKind.CONCEPT}


def test_categorical_features_and_unseen_categories() -> None:
    profile = ReferenceProfile({"plan": CATEGORICAL_REFERENCE}, 20_000)
    values = synthetic.categories(0, ("a", "b", "c"), (0.5, 0.3, 0.2), (0.5, 0.3, 0.2), 1000, 0)
    values += ["brand-new"] * 100
    decisions = _feed(ModelMonitor("churn", 3, profile), [{"plan": v} for v in values])
    assert [(d.feature, d.detector, d.detection_index) for d in decisions] == [("plan", "chi2", 1024)]
    assert decisions[0].current_summary["share[(other)]"] > 0.04
    assert decisions[0].current_summary["recent.share[(other)]"] > 0.04


def test_warmup_values_are_not_fed_and_early_firings_are_not_decisions() -> None:
    shifted = [{"f0": 3.0 + x} for x in synthetic.stationary(seed=0, n=300)]
    eager = _feed(ModelMonitor("m", 1, FOUR, config=MonitorConfig(min_samples=1)), shifted)
    patient = _feed(ModelMonitor("m", 1, FOUR, config=MonitorConfig(min_samples=100)), shifted)
    warm = _feed(ModelMonitor("m", 1, FOUR, config=MonitorConfig(min_samples=1, warmup=50)), shifted)
    assert [d.detection_index for d in eager][:1] == [3]
    assert [d.detection_index for d in patient][:1] == [104]
    assert [d.detection_index for d in warm][:1] == [6] and warm[0].detected_at == _at(56)


def test_votes_require_several_detectors_to_agree() -> None:
    rows = [{"f0": x} for x in synthetic.mean_shift(seed=0, n_before=1000, n_after=1000)]
    one = _feed(ModelMonitor("m", 1, FOUR), rows)
    two = _feed(ModelMonitor("m", 1, FOUR, config=MonitorConfig(min_votes=2)), rows)
    assert [(d.detector, d.detection_index) for d in one][:1] == [("cusum", 1024)]
    assert [(d.detector, d.detection_index) for d in two][:1] == [("ks", 1099)]  # cusum agreed at 1098


def test_a_checkpoint_resumes_with_no_blind_spot_and_no_repeat() -> None:
    rng = np.random.RandomState(0)
    rows = synthetic.covariate_shift(seed=1, n_features=4, shifted=0, n_before=1500, n_after=1500, shift=1.0)
    errors = (rng.random_sample(3000) < np.r_[np.full(1500, 0.2), np.full(1500, 0.5)]).tolist()
    config = MonitorConfig(numeric=(*MonitorConfig().numeric, DetectorSpec("adwin")))
    uninterrupted = _feed(ModelMonitor("m", 1, FOUR, config=config, validation=VALIDATION), rows, errors)
    for split in (1200, 1505, 2000):
        first = ModelMonitor("m", 1, FOUR, config=config, validation=VALIDATION)
        before = _feed(first, rows[:split], errors[:split])
        key = b"secret"
        resumed = checkpoint.loads(checkpoint.dumps(first, key=key), key=key)
        after = _feed(resumed, rows[split:], errors[split:], start=split)
        assert before + after == uninterrupted
    assert len({d.drift_id for d in uninterrupted}) == len(uninterrupted) >= 3


def test_a_missing_feature_is_counted() -> None:
    monitor = ModelMonitor("m", 1, FOUR)
    _feed(monitor, [{"f0": 1.0, "f1": math.inf, "f2": "x"}] * 3)
    counts = monitor.value_counts()
    assert counts["f0"]["valid"] == counts["f1"]["inf"] == counts["f2"]["wrong_type"] == counts["f3"]["missing"] == 3


@pytest.mark.parametrize(("settings", "field"), [
    ({"numeric": ["nope"]}, "detectors"),
    ({"categorical": ["cusum"]}, "detectors"),
    ({"numeric": ["cusum", "cusum"]}, "numeric"),
    ({"numeric": [{"name": "cusum", "params": {"k": 0.5, "bogus": 1}}]}, "detectors"),
    ({"min_samples": 0}, "min_samples"),
    ({"cooldown": 1}, "cooldown"),
    ({"numeric": [7]}, "numeric"),
])
def test_bad_configuration_is_refused_by_name(settings: dict[str, Any], field: str) -> None:
    profile = ReferenceProfile({"n": NUMERIC_REFERENCE, "c": CATEGORICAL_REFERENCE}, 1)
    with pytest.raises(InvalidArgument) as e:
        ModelMonitor("m", 1, profile, config=MonitorConfig.from_mapping(settings))
    assert e.value.field == field


def test_a_row_in_signature_order_and_posix_times_decide_as_a_mapping_and_datetimes_do() -> None:
    rows = synthetic.covariate_shift(3, 4, 0, 1000, 600, 1.5)
    by_name, by_row = ModelMonitor("m", 1, FOUR), ModelMonitor("m", 1, FOUR)
    signature = ("extra", "f3", "f1", "f0")  # another order, a column not profiled, f2 absent
    columns = by_row.columns(signature)
    expected, got = [], []
    for i, row in enumerate(rows):
        expected += by_name.observe_inputs({k: v for k, v in row.items() if k != "f2"}, at=_at(i), trace_id=f"t{i}")
        values = [7.0] + [row[name] for name in signature[1:]]
        got += by_row.observe_row(values, columns, at=_at(i).timestamp(), trace_id=f"t{i}")
    assert got == expected and [d.feature for d in got][:1] == ["f0"]
    assert by_row.value_counts() == by_name.value_counts() and by_row.value_counts()["f2"]["missing"] == len(rows)
