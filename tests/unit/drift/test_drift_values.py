"""Bad values and bad records through the service's real wiring (in-memory broker):
NaN, infinities and out-of-range values are counted and reported and never reach a
detector; records that break the schema go to the dead-letter topic, the rest is handled."""

from __future__ import annotations

import math

import numpy as np
import pytest
from loopline.events.v1 import predictions_pb2 as epb
from loopline_core.kafka.producer import EventProducer
from loopline_core.kafka.topics import DRIFT_INPUTS, LABELED, PREDICTIONS, dead_letter_topic
from loopline_core.profiles.reference import NumericProfile, ReferenceProfile
from loopline_drift_detector.synthetic_events import labeled, prediction

from drift_service import FEATURES, Harness, at, shifted_rows, versions

BOUNDED = ReferenceProfile({name: NumericProfile.from_values(np.random.default_rng(5).normal(0.0, 1.0, 5000),
                                                             valid_min=-10.0, valid_max=10.0)
                            for name in FEATURES}, 5000)
JUNK = [math.nan, math.inf, -math.inf, 50.0, -50.0]  # 50 is outside the profile's valid range


def by_id(m) -> str:  # noqa: ANN001
    return m.prediction_id


def by_model(m) -> str:  # noqa: ANN001
    return m.model


def _monitor(h: Harness, version: int = 1):  # noqa: ANN202
    state = next(s for s in h.service.persistence.states.values() if ("churn", version) in s.versions)
    return state.versions[("churn", version)].monitor


async def test_nan_inf_and_out_of_range_values_are_counted_reported_and_change_no_decision() -> None:
    # Published on the routed topic (keyed by model), so that both runs see one order.
    rows = shifted_rows(600, 1400, shift=1.5, seed=4)
    clean, dirty = Harness(source=versions(BOUNDED)), Harness(source=versions(BOUNDED))
    await clean.publish(DRIFT_INPUTS, [prediction("churn", 1, r, at=at(i)) for i, r in enumerate(rows)], by_model)
    mixed = []
    for i, r in enumerate(rows):
        mixed.append(prediction("churn", 1, r, at=at(i)))
        if i % 10 == 0:  # a junk row between two good ones, at the same time
            mixed.append(prediction("churn", 1, [JUNK[i // 10 % 5], JUNK[(i // 10 + 1) % 5]], at=at(i)))
    await dirty.publish(DRIFT_INPUTS, mixed, by_model)
    await clean.run_until_idle()
    await dirty.run_until_idle()

    assert dirty.broker.records(dead_letter_topic(DRIFT_INPUTS)) == []  # bad values are not bad records
    assert [d.drift_id for d in dirty.drifts()] == [d.drift_id for d in clean.drifts()] != []
    counts = _monitor(dirty).value_counts()
    junk_rows = len(mixed) - len(rows)
    expected = {"nan": junk_rows // 5, "inf": 2 * junk_rows // 5, "out_of_range": 2 * junk_rows // 5}
    for feature in FEATURES:
        assert counts[feature] == {"valid": len(rows), "missing": 0, "wrong_type": 0, **expected}
    registry = dirty.service.detection.metrics.registry
    for feature in FEATURES:
        for outcome in ("valid", "nan", "inf", "out_of_range"):
            reported = registry.get_sample_value("drift_values", {"model": "churn", "version": "1",
                                                                  "stream": feature, "outcome": outcome})
            assert reported == counts[feature][outcome]
    # the evidence of a decision carries the counts as they were when it was made
    last = dirty.drifts()[-1]
    assert last.current_summary["values.nan"] > 0 and last.current_summary["values.out_of_range"] > 0


def _broken(kind: str) -> epb.PredictionLogged:
    p = prediction("churn", 1, [0.1, 0.2], at=at(0))
    tensor = p.inputs[0]
    if kind == "fp64":
        tensor.datatype = "FP64"
    elif kind == "two_rows":
        tensor.shape[:] = [2, 1]
    elif kind == "short":
        tensor.shape[:] = [1, 3]
    elif kind == "no_model":
        p.model = ""
    elif kind == "no_version":
        p.version = 0
    return p


@pytest.mark.parametrize("kind", ["fp64", "two_rows", "short", "no_model", "no_version"])
async def test_a_prediction_that_breaks_the_schema_is_dead_lettered_and_the_rest_handled(kind: str) -> None:
    h = Harness()
    good = [prediction("churn", 1, r, at=at(i)) for i, r in enumerate(shifted_rows(200, 0, 0.0))]
    bad = _broken(kind)
    await h.publish(PREDICTIONS, [*good[:100], bad, *good[100:]], by_id)
    await h.run_until_idle()
    dead = h.broker.records(dead_letter_topic(PREDICTIONS))
    assert [r.key for r in dead] == [bad.prediction_id.encode()]
    assert dict(dead[0].headers)["dlq_error_type"].endswith(b"MalformedEvent")
    assert _monitor(h).value_counts()["x"]["valid"] == len(good)


async def test_records_that_do_not_decode_or_carry_no_time_are_dead_lettered() -> None:
    h = Harness()
    good = [prediction("churn", 1, r, at=at(i)) for i, r in enumerate(shifted_rows(50, 0, 0.0))]
    timeless = prediction("churn", 1, [0.1, 0.2], at=at(0))
    timeless.ClearField("served_at")
    outcome_without_time = labeled("churn", 1, True, at=at(0))
    outcome_without_time.ClearField("joined_at")
    await h.publish(PREDICTIONS, [*good, timeless], by_id)
    await h.publish(LABELED, [outcome_without_time], lambda m: m.prediction.model)
    garbage = EventProducer(h.settings.kafka, service="gateway", driver=h.broker.producer())
    await garbage.start()
    await garbage.send_record(PREDICTIONS, key=b"junk", value=b"\xff\x00 not protobuf",
                              headers=[("ce_type", b"loopline.events.v1.PredictionLogged")])
    await h.run_until_idle()
    # times are checked when routing: each record without one is dead-lettered at its source, alone
    assert sorted(r.key for r in h.broker.records(dead_letter_topic(PREDICTIONS))) == sorted(
        [b"junk", timeless.prediction_id.encode()])
    assert len(h.broker.records(dead_letter_topic(LABELED))) == 1
    assert h.broker.records(dead_letter_topic(DRIFT_INPUTS)) == []
    assert _monitor(h).value_counts()["x"]["valid"] == len(good)


async def test_a_single_event_record_without_a_time_is_dead_lettered_at_the_detect_stage() -> None:
    # Records routed one by one (before batching) are still checked when they are applied.
    h = Harness()
    good = [prediction("churn", 1, r, at=at(i)) for i, r in enumerate(shifted_rows(50, 0, 0.0))]
    timeless = prediction("churn", 1, [0.1, 0.2], at=at(0))
    timeless.ClearField("served_at")
    await h.publish(DRIFT_INPUTS, [*good[:20], timeless, *good[20:]], by_model)
    await h.run_until_idle()
    dead = h.broker.records(dead_letter_topic(DRIFT_INPUTS))
    assert len(dead) == 1 and b"no time" in dict(dead[0].headers)["dlq_reason"]
    assert _monitor(h).value_counts()["x"]["valid"] == len(good)
