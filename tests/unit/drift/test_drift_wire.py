"""The drift detector's cheaper paths give what the plain ones give: routed records put
together in wire form, CloudEvent decoding of a header list already seen, and the
consumer's deliveries."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import ConsumerRecord
from drift_cases import T0
from loopline.common.v1 import common_pb2 as cpb
from loopline.events.v1 import drift_inputs_pb2 as dipb
from loopline.events.v1 import predictions_pb2 as epb
from loopline_core.errors import MalformedEvent
from loopline_core.kafka.cloudevents import EventTypes, decode, encode, new_event
from loopline_core.kafka.handlers import Delivery

from loopline_drift_detector.handlers import route
from loopline_drift_detector.synthetic_events import labeled, prediction

TYPES = EventTypes(epb.PredictionLogged, epb.LabeledPrediction)


def _deliveries(n: int, seed: int = 0) -> list[Delivery]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        model = rng.choice(("churn", "fraud"))
        at = T0 + timedelta(seconds=i)
        if rng.random() < 0.3:
            message = labeled(model, rng.choice((1, 2)), rng.random() < 0.8, at=at)
        else:
            message = prediction(model, rng.choice((1, 2)), [rng.gauss(0, 1) for _ in range(3)], at=at)
            if rng.random() < 0.1:
                message.variant = cpb.VARIANT_SHADOW
        value, headers = encode(new_event(message, source="/loopline/test"))
        out.append(Delivery("loopline.predictions.v1", 2, 100 + i, None, decode(value, headers, TYPES),
                            tuple(headers)))
    return out


def _plain(deliveries: list[Delivery]) -> dict[str, dipb.DriftInputs]:
    """What the route stage sent before: decoded events, trimmed, copied into one DriftInputs per model."""
    out: dict[str, dipb.DriftInputs] = {}
    for d in deliveries:
        message = type(d.event.data).FromString(d.event.data.SerializeToString())
        if type(message) is epb.PredictionLogged:
            if message.variant == cpb.VARIANT_SHADOW:
                continue
            del message.outputs[:]
            model = message.model
        else:
            del message.prediction.inputs[:], message.prediction.outputs[:]
            model = message.prediction.model
        if model not in out:
            out[model] = dipb.DriftInputs(model=model, source_topic=d.topic, source_partition=d.partition,
                                          source_offset=d.offset)
        (out[model].predictions if type(message) is epb.PredictionLogged else out[model].labeled).append(message)
    return out


def test_routed_records_in_wire_form_are_the_drift_inputs_of_the_decoded_events() -> None:
    deliveries = _deliveries(300)
    shadows = sum(type(d.event.data) is epb.PredictionLogged and d.event.data.variant == cpb.VARIANT_SHADOW
                  for d in deliveries)
    expected = _plain(deliveries)
    out, skipped = route.batched(deliveries)
    assert skipped == shadows > 0
    assert [o.key for o in out] == list(expected) and all(o.subject == o.key for o in out)
    for item in out:
        assert isinstance(item.message, route.EncodedDriftInputs)
        got = item.message.decoded()
        assert got == expected[item.key] and got.predictions and got.labeled
        # What the producer writes: a DriftInputs CloudEvent, the record's bytes as they are.
        value, headers = encode(new_event(item.message, source="/t", event_id=item.event_id))
        assert dict(headers)["ce_type"] == b"loopline.events.v1.DriftInputs"
        assert value == item.message.SerializeToString() and len(value) == item.message.ByteSize()


@pytest.mark.parametrize("limit", [300, 2000, 10_000])
def test_a_routed_batch_is_cut_below_the_limit_with_its_events_in_order(monkeypatch, limit: int) -> None:  # noqa: ANN001
    monkeypatch.setattr(route, "MAX_RECORD_BYTES", limit)
    deliveries = _deliveries(200, seed=1)
    expected = _plain(deliveries)
    out, _ = route.batched(deliveries)
    assert len({o.event_id for o in out}) == len(out)
    assert out[0].event_id == route.batched(deliveries)[0][0].event_id  # the same batch, the same ids
    for model, whole in expected.items():
        parts = [o.message.decoded() for o in out if o.key == model]
        assert len(parts) > 1 or limit == 10_000
        assert all(p.ByteSize() <= limit for p in parts)
        assert all((p.model, p.source_offset) == (model, whole.source_offset) for p in parts)
        assert [m for p in parts for m in p.predictions] == list(whole.predictions)
        assert [m for p in parts for m in p.labeled] == list(whole.labeled)


def test_an_event_larger_than_the_limit_goes_alone(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(route, "MAX_RECORD_BYTES", 10)
    out, _ = route.batched([d for d in _deliveries(20, seed=2) if type(d.event.data) is epb.PredictionLogged])
    assert all(len(o.message.decoded().predictions) == 1 for o in out)


def test_a_header_list_seen_before_decodes_as_the_first_did() -> None:
    types = EventTypes(epb.PredictionLogged)
    moment = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    events = [new_event(prediction("m", 1, [float(i)], at=T0), source="/s", subject="m/1", time=moment)
              for i in range(3)]
    encoded = [encode(e) for e in events]
    for value, headers in encoded:  # the first fills the cache, the others read it
        got = decode(value, [(k, bytes(v)) for k, v in headers], types)
        assert got == events[encoded.index((value, headers))]
    value, headers = encoded[0]
    for bad_id, why in ((b"", "ce_id is missing"), (b"\xff\xfe", "ce_id is not UTF-8")):
        broken = [headers[0], ("ce_id", bad_id), *headers[2:]]
        with pytest.raises(MalformedEvent, match=why.split(" is")[0]):
            decode(value, broken, types)
    twice = [*headers[:2], *headers[2:], ("ce_id", b"again")]
    for _ in range(2):  # a refused list is not remembered as accepted
        with pytest.raises(MalformedEvent, match="more than once"):
            decode(value, twice, types)
    with pytest.raises(MalformedEvent, match="not a valid"):
        decode(b"\xff\xff\xff", headers, types)  # the headers are known; the value is still checked
    with pytest.raises(MalformedEvent, match="unexpected event type"):
        decode(value, headers, EventTypes(epb.LabeledPrediction))  # what one consumer accepts is its own


async def test_a_delivery_is_the_dataclass_the_consumer_always_made() -> None:
    from loopline_core.kafka.processing import RecordProcessor

    value, headers = encode(new_event(prediction("m", 1, [1.0], at=T0), source="/s"))
    record = ConsumerRecord("t", 1, 7, 0, 0, b"k", value, None, len(b"k"), len(value), headers)
    processor = RecordProcessor.__new__(RecordProcessor)
    processor.types = TYPES
    got = processor._delivery(record, tuple(headers))
    assert got == Delivery("t", 1, 7, "k", decode(value, headers, TYPES), tuple(headers))
    assert hash(got.key) == hash("k") and got.headers == tuple(headers)
    with pytest.raises(AttributeError):
        got.offset = 8  # type: ignore[misc]
