"""Validation, scoring and metrics of the feedback collector (pure functions)."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from loopline.common.v1 import common_pb2
from loopline.events.v1 import predictions_pb2
from loopline_core.errors import InvalidArgument

from loopline_feedback_collector import domain

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def feedback(prediction_id: str | None = None, when: datetime = NOW, **label: object) -> predictions_pb2.FeedbackReceived:
    event = predictions_pb2.FeedbackReceived(prediction_id=prediction_id or str(uuid.uuid4()),
                                             label=common_pb2.Label(**label))
    event.event_time.FromDatetime(when)
    return event


def classifier(probabilities: list[float]) -> predictions_pb2.PredictionLogged:
    p = predictions_pb2.PredictionLogged(prediction_id=str(uuid.uuid4()), model="m", version=1)
    p.outputs.add(name="probabilities", datatype="FP32", shape=[1, len(probabilities)], fp_contents=probabilities)
    p.served_at.FromDatetime(NOW - timedelta(seconds=3))
    return p


def regressor(value: float) -> predictions_pb2.PredictionLogged:
    p = predictions_pb2.PredictionLogged(prediction_id=str(uuid.uuid4()), model="r", version=2)
    p.outputs.add(name="prediction", datatype="FP32", shape=[1, 1], fp_contents=[value])
    return p


@pytest.mark.parametrize("good", [str(uuid.uuid4()), f"{uuid.uuid4()}/0", f"{uuid.uuid4()}/17"])
def test_prediction_ids_accepted(good: str) -> None:
    domain.check_prediction_id(good)


@pytest.mark.parametrize("bad", ["", "abc", str(uuid.uuid4()).upper(), f"{uuid.uuid4()}/", f"{uuid.uuid4()}/01",
                                 str(uuid.uuid1()), f"{uuid.uuid4()}/x"])
def test_prediction_ids_refused_with_named_field(bad: str) -> None:
    with pytest.raises(InvalidArgument, match="prediction id") as caught:
        domain.check_prediction_id(bad)
    assert caught.value.field == "prediction_id"


def test_label_without_value_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="no value"):
        domain.check_feedback(feedback(), NOW)


def test_event_time_required_and_not_in_future() -> None:
    missing = predictions_pb2.FeedbackReceived(prediction_id=str(uuid.uuid4()), label=common_pb2.Label(number=1.0))
    with pytest.raises(InvalidArgument, match="event_time is required"):
        domain.check_feedback(missing, NOW)
    with pytest.raises(InvalidArgument, match="in the future"):
        domain.check_feedback(feedback(when=NOW + timedelta(hours=1), number=1.0), NOW)
    domain.check_feedback(feedback(when=NOW + timedelta(minutes=1), number=1.0), NOW)


def test_non_finite_number_refused() -> None:
    with pytest.raises(InvalidArgument, match="not finite"):
        domain.check_feedback(feedback(number=math.nan), NOW)


def test_classification_score_uses_argmax_and_log_loss() -> None:
    scored = domain.score(classifier([0.1, 0.7, 0.2]), feedback(class_index=1))
    assert scored.correct and scored.predicted_class == 1 and scored.label_class == 1
    assert scored.log_loss == pytest.approx(-math.log(0.7))
    wrong = domain.score(classifier([0.1, 0.7, 0.2]), feedback(class_index=2))
    assert not wrong.correct and wrong.log_loss == pytest.approx(-math.log(0.2))


def test_class_label_as_decimal_index_and_unknown_name() -> None:
    assert domain.score(classifier([0.9, 0.1]), feedback(class_label="0")).correct
    with pytest.raises(InvalidArgument, match="not a known class name"):
        domain.score(classifier([0.9, 0.1]), feedback(class_label="cat"))


def test_wrong_label_types_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="classifier.*not a number"):
        domain.score(classifier([0.5, 0.5]), feedback(number=1.0))
    with pytest.raises(InvalidArgument, match="regressor.*number label"):
        domain.score(regressor(1.0), feedback(class_index=0))
    with pytest.raises(InvalidArgument, match="out of range"):
        domain.score(classifier([0.5, 0.5]), feedback(class_index=2))


def test_regression_error_is_prediction_minus_label() -> None:
    assert domain.score(regressor(3.5), feedback(number=1.0)).error == pytest.approx(2.5)


def test_event_ids_are_stable_per_revision() -> None:
    pid = str(uuid.uuid4())
    assert domain.labeled_event_id(pid, 1, 1, 0) == domain.labeled_event_id(pid, 1, 1, 0)
    assert len({domain.labeled_event_id(pid, 1, 1, 0), domain.labeled_event_id(pid, 1, 1, 1),
                domain.labeled_event_id(pid, 1, 3, 0), domain.labeled_event_id(pid, 2, 1, 0)}) == 4


def test_label_delay() -> None:
    assert domain.label_delay_ms(classifier([1.0]), feedback(class_index=0)) == 3000


def test_label_delay_is_exact_to_the_millisecond_and_never_negative() -> None:
    prediction, label = classifier([1.0]), feedback(class_index=0)
    prediction.served_at.FromDatetime(NOW)
    label.event_time.FromDatetime(NOW + timedelta(seconds=4, milliseconds=350, microseconds=999))
    assert domain.label_delay_ms(prediction, label) == 4350
    label.event_time.FromDatetime(NOW - timedelta(milliseconds=1))
    assert domain.label_delay_ms(prediction, label) == 0


def test_the_future_limit_holds_to_the_microsecond() -> None:
    limit = NOW + domain.MAX_FUTURE_SKEW
    domain.check_feedback(feedback(when=limit, number=1.0), NOW)
    with pytest.raises(InvalidArgument, match="in the future"):
        domain.check_feedback(feedback(when=limit + timedelta(microseconds=1), number=1.0), NOW)


def test_macro_f1() -> None:
    # class 0: tp 8, fp 2, fn 0 -> 16/18; class 1: tp 0, fp 0, fn 2 -> 0
    assert domain.macro_f1([(0, 0, 8), (0, 1, 2)]) == pytest.approx((16 / 18) / 2)
    assert domain.macro_f1([]) == 0.0
    assert domain.macro_f1([(1, 1, 5), (0, 0, 5)]) == 1.0
