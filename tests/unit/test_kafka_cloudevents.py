"""CloudEvents binary mode: what goes on the wire, and every way decoding refuses."""

from __future__ import annotations

import doctest
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.protobuf.wrappers_pb2 import StringValue
from loopline.events.v1.predictions_pb2 import FeedbackReceived, PredictionLogged

from loopline_core.errors import MalformedEvent
from loopline_core.kafka import cloudevents, retry
from loopline_core.kafka.cloudevents import EventTypes, decode, derive_event_id, encode, new_event

MOMENT = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
TYPES = EventTypes(PredictionLogged, FeedbackReceived)


def _event(subject: str | None = "churn/3"):
    message = PredictionLogged(prediction_id="p-1", model="churn", version=3, latency_us=120)
    return new_event(message, source="/loopline/serving-gateway", event_id="e-1", subject=subject, time=MOMENT)


def _headers(**changes: bytes | None) -> list[tuple[str, bytes]]:
    _, headers = encode(_event())
    return [(k, changes[k]) if k in changes else (k, v) for k, v in headers if changes.get(k, b"") is not None]


def test_binary_mode_puts_the_payload_in_the_value_and_attributes_in_headers() -> None:
    value, headers = encode(_event())
    assert dict(headers) == {
        "ce_specversion": b"1.0",
        "ce_id": b"e-1",
        "ce_source": b"/loopline/serving-gateway",
        "ce_type": b"loopline.events.v1.PredictionLogged",
        "ce_time": b"2026-01-02T03:04:05.000006Z",
        "ce_subject": b"churn/3",
        "content-type": b"application/protobuf",
    }
    assert PredictionLogged.FromString(value).prediction_id == "p-1"
    assert decode(value, headers, TYPES) == _event()


def test_subject_is_optional() -> None:
    value, headers = encode(_event(subject=None))
    assert "ce_subject" not in dict(headers)
    assert decode(value, headers, TYPES).subject is None


def test_time_is_written_in_utc_and_read_with_its_offset() -> None:
    local = MOMENT.astimezone(timezone(timedelta(hours=2)))
    assert cloudevents.format_time(local) == "2026-01-02T03:04:05.000006Z"
    value, headers = encode(_event())
    headers = [(k, b"2026-01-02T05:04:05+02:00" if k == "ce_time" else v) for k, v in headers]
    assert decode(value, headers, TYPES).time == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_new_events_get_fresh_uuid_ids_and_the_full_protobuf_name() -> None:
    first = new_event(StringValue(value="x"), source="/loopline/t")
    second = new_event(StringValue(value="x"), source="/loopline/t")
    assert first.id != second.id and uuid.UUID(first.id).version == 4
    assert first.type == "google.protobuf.StringValue"
    assert first.time.tzinfo is not None


def test_derived_ids_are_stable_per_cause_and_purpose() -> None:
    assert derive_event_id("e-1", "labeled") == derive_event_id("e-1", "labeled")
    assert derive_event_id("e-1", "labeled") != derive_event_id("e-1", "retrain")
    assert derive_event_id("e-1", "labeled") != derive_event_id("e-2", "labeled")
    assert uuid.UUID(derive_event_id("e-1", "labeled")).version == 5


@pytest.mark.parametrize("cause", ["e-1", "", "0f3c9a52-7d1e-4b8e-9a51-1f2e3d4c5b6a\n1\n2", "é/ü"])
def test_derived_ids_are_rfc_4122_name_based_ids(cause: str) -> None:
    # Ids already on topics and in stores were made with uuid.uuid5: they must not change.
    namespace = uuid.uuid5(uuid.NAMESPACE_URL, "urn:loopline:event-id")
    assert derive_event_id(cause, "labeled/3") == str(uuid.uuid5(namespace, f"{cause}\nlabeled/3"))


@pytest.mark.parametrize("header", ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "content-type"])
def test_a_missing_required_header_is_named(header: str) -> None:
    value, _ = encode(_event())
    with pytest.raises(MalformedEvent, match=f"required header {header} is missing") as caught:
        decode(value, _headers(**{header: None}), TYPES)
    assert caught.value.field == header


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"ce_specversion": b"0.3"}, "ce_specversion", "is not 1.0"),
        ({"content-type": b"application/json"}, "content-type", "is not application/protobuf"),
        ({"ce_type": b"loopline.events.v1.DriftDetected"}, "ce_type", "unexpected event type"),
        ({"ce_time": b"yesterday"}, "ce_time", "not an RFC 3339 timestamp"),
        ({"ce_time": b"2026-01-02T03:04:05"}, "ce_time", "no UTC offset"),
        ({"ce_id": b"\xff\xfe"}, "ce_id", "not UTF-8"),
        ({"ce_id": b""}, "ce_id", "missing or empty"),
    ],
)
def test_bad_headers_are_malformed_with_a_reason(changes: dict[str, bytes], field: str, reason: str) -> None:
    value, _ = encode(_event())
    with pytest.raises(MalformedEvent, match=reason) as caught:
        decode(value, _headers(**changes), TYPES)
    assert caught.value.field == field


def test_a_repeated_attribute_header_is_malformed() -> None:
    value, headers = encode(_event())
    with pytest.raises(MalformedEvent, match="ce_id appears more than once"):
        decode(value, [*headers, ("ce_id", b"e-2")], TYPES)


def test_a_value_that_is_not_the_declared_message_is_malformed() -> None:
    _, headers = encode(_event())
    with pytest.raises(MalformedEvent, match="not a valid loopline.events.v1.PredictionLogged") as caught:
        decode(b"\xff\xff\xff", headers, TYPES)
    assert caught.value.field == "value"


def test_other_headers_are_ignored() -> None:
    value, headers = encode(_event())
    assert decode(value, [("traceparent", b"00-x"), ("dlq_reason", b"\xff"), *headers], TYPES) == _event()


def test_docstring_examples_run() -> None:
    for module in (cloudevents, retry):
        assert doctest.testmod(module).failed == 0


def test_repeated_header_values_decode_the_same_from_the_caches() -> None:
    # Decoding caches repeating header texts and parsed times: each record still gets its own.
    value, _ = encode(_event())
    later = MOMENT + timedelta(seconds=1)
    for _ in range(3):
        assert decode(value, _headers(), TYPES).time == MOMENT
        assert decode(value, _headers(ce_time=cloudevents.format_time(later).encode()), TYPES).time == later
        assert decode(value, _headers(ce_id=b"e-2"), TYPES).id == "e-2"
        with pytest.raises(MalformedEvent, match="no UTC offset"):
            decode(value, _headers(ce_time=b"2026-01-02T03:04:05"), TYPES)
        with pytest.raises(MalformedEvent, match="ce_source is not UTF-8"):
            decode(value, _headers(ce_source=b"\xff"), TYPES)
