"""The drift-detector service through its real wiring, on the in-memory broker."""

from __future__ import annotations

from loopline.common.v1 import common_pb2 as cpb
from loopline.events.v1 import drift_inputs_pb2 as dipb
from loopline.events.v1 import drift_pb2 as dpb
from loopline_core.kafka.cloudevents import decode
from loopline_core.kafka.producer import Outgoing
from loopline_core.kafka.topics import DRIFT_INPUTS, LABELED, PREDICTIONS, dead_letter_topic
from loopline_drift_detector.synthetic_events import labeled, prediction

from drift_service import INPUT_TYPES, Harness, at, shifted_rows, versions


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
    assert len(h.routed()) == len(outcomes)  # no shadow inputs routed
    assert len(h.broker.records(DRIFT_INPUTS)) < len(outcomes) / 10  # one record per model and polled batch
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
    # width and version are checked on the registry's signature: each refused event alone, as its own type
    dead = h.broker.records(dead_letter_topic(DRIFT_INPUTS))
    refused = sorted((decode(r.value, r.headers, INPUT_TYPES).data for r in dead), key=lambda m: m.version)
    assert [m.prediction_id for m in refused] == [wrong_width.prediction_id, unknown_version.prediction_id]
    reasons = sorted(dict(r.headers)["dlq_error_type"].decode() for r in dead)
    assert reasons[0].endswith("MalformedEvent") and reasons[1].endswith("NotFound")
    state = next(iter(h.service.persistence.states.values()))
    assert sum(s.next_offset for s in h.service.persistence.states.values()) == len(h.broker.records(DRIFT_INPUTS))
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


async def test_routed_batches_give_the_decisions_of_single_event_records() -> None:
    # Batching the internal hop changes the records, not what the detectors see.
    rows = shifted_rows(400, 1600, shift=1.5)
    events = [prediction("churn", 1, r, at=at(i)) for i, r in enumerate(rows)]
    routed = Harness()
    await routed.publish(PREDICTIONS, events, by_id)
    await routed.run_until_idle()
    assert len(routed.broker.records(DRIFT_INPUTS)) < len(events) / 10
    assert sorted(m.prediction_id for m in routed.routed()) == sorted(m.prediction_id for m in events)
    assert routed.drifts() and routed.retrains()
    single = Harness()  # the same events in the routed order, one per record
    await single.publish(DRIFT_INPUTS, routed.routed(), lambda m: m.model)
    await single.run_until_idle()
    assert [d.drift_id for d in routed.drifts()] == [d.drift_id for d in single.drifts()]
    assert [r.request_id for r in routed.retrains()] == [r.request_id for r in single.retrains()]


async def test_a_registry_outage_inside_a_routed_batch_is_retried_without_applying_anything_twice() -> None:
    from loopline_core.errors import Unavailable

    class Flaky:
        def __init__(self, source) -> None:  # noqa: ANN001
            self.source, self.failures = source, 2

        async def get(self, model: str, version: int):  # noqa: ANN201
            if version == 2 and self.failures:
                self.failures -= 1
                raise Unavailable("registry down")
            return await self.source.get(model, version)

    h = Harness(source=Flaky(versions()), kafka={"retry_backoff_ms": 1, "retry_backoff_max_ms": 2})
    # one routed batch with version 1 (known at once) and version 2 (known after two failures)
    mixed = [prediction("churn", 1 + i % 2, r, at=at(i)) for i, r in enumerate(shifted_rows(200, 0, 0.0))]
    await h.gateway.start()
    routed_batch = dipb.DriftInputs(model="churn", predictions=mixed)
    await h.gateway.send_batch(DRIFT_INPUTS, [Outgoing("churn", routed_batch)])
    await h.run_until_idle()
    state = next(iter(h.service.persistence.states.values()))
    assert state.versions[("churn", 1)].monitor.value_counts()["x"]["valid"] == 100
    assert state.versions[("churn", 2)].monitor.value_counts()["x"]["valid"] == 100
    assert h.broker.records(dead_letter_topic(DRIFT_INPUTS)) == []


async def test_a_routed_batch_too_large_for_one_record_is_cut_in_order(monkeypatch) -> None:  # noqa: ANN001
    from loopline_drift_detector.handlers import route

    monkeypatch.setattr(route, "MAX_RECORD_BYTES", 2000)
    events = [prediction("churn", 1, r, at=at(i)) for i, r in enumerate(shifted_rows(300, 0, 0.0))]
    outcomes = [labeled("churn", 1, i % 4 != 0, at=at(i)) for i in range(100)]
    h = Harness()
    await h.publish(PREDICTIONS, events, by_id)
    await h.publish(LABELED, outcomes, by_model)
    await h.run_until_idle()
    records = h.broker.records(DRIFT_INPUTS)
    assert all(len(r.value) <= 2000 for r in records) and len({dict(r.headers)["ce_id"] for r in records}) == len(records)
    assert sorted(m.prediction.prediction_id if isinstance(m, type(outcomes[0])) else m.prediction_id
                  for m in h.routed()) == sorted([m.prediction_id for m in events]
                                                 + [o.prediction.prediction_id for o in outcomes])
    state = next(iter(h.service.persistence.states.values()))
    assert state.versions[("churn", 1)].monitor.value_counts()["x"]["valid"] == 300
