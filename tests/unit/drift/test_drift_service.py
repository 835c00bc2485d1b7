"""The drift-detector service through its real wiring, on the in-memory broker."""

from __future__ import annotations

from loopline.common.v1 import common_pb2 as cpb
from loopline.events.v1 import drift_pb2 as dpb
from loopline_core.kafka.topics import DRIFT_INPUTS, LABELED, PREDICTIONS, dead_letter_topic
from loopline_drift_detector.synthetic_events import labeled, prediction

from drift_service import Harness, at, shifted_rows, versions


def by_id(m) -> str:  # noqa: ANN001
    return m.prediction_id


def by_model(m) -> str:  # noqa: ANN001
    return m.prediction.model


async def test_a_shift_on_two_features_gives_their_drift_events_and_one_retrain_request() -> None:
    h = Harness()
    rows = shifted_rows(400, 1600, shift=1.5)
    await h.publish(PREDICTIONS, [prediction("churn", 1, r, at=at(i)) for i, r in enumerate(rows)], by_id)
    await h.run_until_idle()
    drifts = h.drifts()
    assert {(d.feature, d.kind) for d in drifts} == {("x", dpb.DRIFT_KIND_DATA), ("y", dpb.DRIFT_KIND_DATA)}
    assert all(d.window.end.ToDatetime() >= at(400).replace(tzinfo=None) for d in drifts)
    assert all(len(d.sample_trace_ids) == 5 and all(len(t) == 32 for t in d.sample_trace_ids) for d in drifts)
    # realert_after=1000 lets each stream speak again once within 1600 drifted rows, the cooldown holds the request
    retrains = h.retrains()
    assert len(retrains) == 1
    assert {d.drift_id for d in retrains[0].evidence} <= {d.drift_id for d in drifts}
    assert retrains[0].model == "churn" and retrains[0].version == 1


async def test_stationary_inputs_give_no_event() -> None:
    h = Harness()
    await h.publish(PREDICTIONS, [prediction("churn", 1, r, at=at(i))
                                  for i, r in enumerate(shifted_rows(1500, 0, 0.0))], by_id)
    await h.run_until_idle()
    assert h.drifts() == [] and h.retrains() == []


async def test_shadow_inputs_are_left_out_but_shadow_errors_count_for_the_shadow_version() -> None:
    h = Harness()
    rows = shifted_rows(0, 600, shift=3.0)
    await h.publish(PREDICTIONS, [prediction("churn", 2, r, at=at(i), variant=cpb.VARIANT_SHADOW)
                                  for i, r in enumerate(rows)], by_id)
    outcomes = [i % 5 != 0 for i in range(500)] + [i % 2 == 0 for i in range(1000)]  # error 0.2 → 0.5
    await h.publish(LABELED, [labeled("churn", 2, ok, at=at(i), variant=cpb.VARIANT_SHADOW)
                              for i, ok in enumerate(outcomes)], by_model)
    await h.run_until_idle()
    assert len(h.broker.records(DRIFT_INPUTS)) == len(outcomes)  # no shadow inputs routed
    kinds = {(d.version, d.kind) for d in h.drifts()}
    assert (2, dpb.DRIFT_KIND_CONCEPT) in kinds and all(k != dpb.DRIFT_KIND_DATA for _, k in kinds)
    assert len(h.retrains()) == 1 and h.retrains()[0].version == 2


async def test_records_that_break_the_schema_are_dead_lettered_and_the_rest_is_handled() -> None:
    h = Harness()
    good = [prediction("churn", 1, r, at=at(i)) for i, r in enumerate(shifted_rows(300, 0, 0.0))]
    no_features = prediction("churn", 1, [1.0, 2.0], at=at(0))
    no_features.inputs[0].name = "pixels"
    wrong_width = prediction("churn", 1, [1.0, 2.0, 3.0], at=at(0))
    unknown_version = prediction("churn", 9, [1.0, 2.0], at=at(0))
    await h.publish(PREDICTIONS, [*good[:100], no_features, wrong_width, unknown_version, *good[100:]], by_id)
    await h.run_until_idle()
    assert [r.key for r in h.broker.records(dead_letter_topic(PREDICTIONS))] == [no_features.prediction_id.encode()]
    assert len(h.broker.records(dead_letter_topic(DRIFT_INPUTS))) == 2  # width and version checked on the registry's signature
    state = next(iter(h.service.persistence.states.values()))
    assert sum(s.next_offset for s in h.service.persistence.states.values()) == len(good) + 2
    assert state.versions[("churn", 1)].monitor.value_counts()["x"]["valid"] == len(good)


async def test_a_version_without_profile_has_no_data_drift_but_concept_drift() -> None:
    h = Harness(source=versions(profile=None))
    await h.publish(PREDICTIONS, [prediction("churn", 1, r, at=at(i))
                                  for i, r in enumerate(shifted_rows(100, 500, 3.0))], by_id)
    outcomes = [i % 5 != 0 for i in range(500)] + [i % 2 == 0 for i in range(1000)]
    await h.publish(LABELED, [labeled("churn", 1, ok, at=at(i)) for i, ok in enumerate(outcomes)], by_model)
    await h.run_until_idle()
    assert {d.kind for d in h.drifts()} <= {dpb.DRIFT_KIND_CONCEPT, dpb.DRIFT_KIND_PERFORMANCE}
    assert h.drifts()
    counts = sum((s.counts for s in h.service.persistence.states.values()), start=__import__("collections").Counter())
    assert counts["inputs_without_profile"] == 600


async def test_a_restart_mid_stream_neither_repeats_nor_loses_a_decision() -> None:
    # The routed stream (keyed by model) is what the detect loop sees in order; feed it directly.
    rows = shifted_rows(400, 1600, shift=1.5)
    events = [prediction("churn", 1, r, at=at(i)) for i, r in enumerate(rows)]
    whole = Harness()
    await whole.publish(DRIFT_INPUTS, events, lambda m: m.model)
    await whole.run_until_idle()
    assert len(whole.drifts()) >= 3 and len(whole.retrains()) == 1

    first = Harness()
    await first.publish(DRIFT_INPUTS, events[:700], lambda m: m.model)
    await first.run_until_idle()
    second = Harness(broker=first.broker, store=first.store)
    await second.publish(DRIFT_INPUTS, events[700:], lambda m: m.model)
    await second.run_until_idle()
    assert [d.drift_id for d in second.drifts()] == [d.drift_id for d in whole.drifts()]
    assert [r.request_id for r in second.retrains()] == [r.request_id for r in whole.retrains()]
    assert first.store.outbox == {}


async def test_a_replay_from_an_older_offset_is_skipped_by_the_checkpoint() -> None:
    h = Harness()
    rows = shifted_rows(400, 800, shift=1.5)
    await h.publish(PREDICTIONS, [prediction("churn", 1, r, at=at(i)) for i, r in enumerate(rows)], by_id)
    await h.run_until_idle()
    before = len(h.drifts())
    # the group's Kafka offsets lost: the detect loop sees everything again, its checkpoint skips it
    h.broker._committed = {k: v for k, v in h.broker._committed.items() if k[0] != h.settings.detect_group}
    again = Harness(broker=h.broker, store=h.store)
    await again.run_until_idle()
    assert len(again.drifts()) == before
