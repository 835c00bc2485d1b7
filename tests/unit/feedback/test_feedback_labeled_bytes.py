"""LabeledPrediction records serialized from the stored payloads (domain.LabeledBytes) are the
bytes the message itself would serialize to, and go through the producer's encoding as one."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from loopline.common.v1 import common_pb2
from loopline.events.v1 import predictions_pb2
from loopline_core.kafka.cloudevents import encode, new_event

from loopline_feedback_collector import domain

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _prediction(outputs: int) -> predictions_pb2.PredictionLogged:
    p = predictions_pb2.PredictionLogged(prediction_id=str(uuid.uuid4()), model="m", version=3, variant=1)
    p.outputs.add(name="probabilities", datatype="FP32", shape=[1, outputs], fp_contents=[1.0 / outputs] * outputs)
    p.served_at.FromDatetime(NOW - timedelta(seconds=3))
    return p


def _feedback(pid: str, **label: object) -> predictions_pb2.FeedbackReceived:
    f = predictions_pb2.FeedbackReceived(feedback_id=str(uuid.uuid4()), prediction_id=pid,
                                         label=common_pb2.Label(**label), source="test")
    f.event_time.FromDatetime(NOW)
    f.received_at.FromDatetime(NOW + timedelta(milliseconds=5))
    return f


@pytest.mark.parametrize(("outputs", "delay", "correct", "error", "revision"), [
    (3, 3000, True, 0.0, 0),
    (3, 0, False, 1.0, 0),
    (200, 10**12, False, -2.5, 1),  # a prediction over 127 bytes: a two-byte length
    (2, 1, True, -0.0, 300),  # -0.0 is written (protobuf compares the bits); a two-byte revision
    (1, 127, False, 1e-300, 127),
])
def test_the_bytes_are_the_messages_serialization(outputs: int, delay: int, correct: bool, error: float,
                                                  revision: int) -> None:
    prediction = _prediction(outputs)
    feedback = _feedback(prediction.prediction_id, class_index=1)
    joined_at = Timestamp()
    joined_at.FromDatetime(NOW + timedelta(seconds=1, microseconds=7))
    expected = predictions_pb2.LabeledPrediction(prediction=prediction, feedback=feedback, joined_at=joined_at,
                                                 label_delay_ms=delay, correct=correct, error=error,
                                                 revision=revision)
    built = domain.LabeledBytes(joined_at.SerializeToString()).record(
        prediction.SerializeToString(), feedback.SerializeToString(), delay, correct, error, revision)
    assert built == expected.SerializeToString()
    assert predictions_pb2.LabeledPrediction.FromString(built) == expected


def test_a_serialized_record_is_encoded_as_a_labeled_prediction_event() -> None:
    prediction = _prediction(3)
    feedback = _feedback(prediction.prediction_id, number=2.0)
    data = domain.LabeledBytes(Timestamp(seconds=5).SerializeToString()).record(
        prediction.SerializeToString(), feedback.SerializeToString(), 10, False, 0.5, 2)
    value, headers = encode(new_event(domain.SerializedLabeled(data), source="/test",  # type: ignore[arg-type]
                                      event_id="id-1", subject=prediction.prediction_id))
    assert value == data
    assert dict(headers)["ce_type"] == b"loopline.events.v1.LabeledPrediction"
    assert dict(headers)["ce_subject"] == prediction.prediction_id.encode()
