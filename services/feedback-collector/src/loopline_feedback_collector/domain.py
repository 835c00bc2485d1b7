"""Pure join logic: validation of labels, scoring of one prediction against its label,
and the quality metrics computed from scored records. No I/O here."""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple
from datetime import UTC, datetime, timedelta

from loopline.events.v1 import predictions_pb2
from loopline_core.errors import InvalidArgument
from loopline_core.kafka.cloudevents import derive_event_id
from loopline_core.kafka.wire import serialized, varint

_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
PREDICTION_ID = re.compile(rf"^{_UUID}(/(0|[1-9][0-9]{{0,5}}))?$")
#: Labels may not claim an event time further than this in the future (clock skew).
MAX_FUTURE_SKEW = timedelta(minutes=5)
EPS = 1e-15


def check_prediction_id(prediction_id: str) -> None:
    if not PREDICTION_ID.match(prediction_id):
        raise InvalidArgument(
            f"prediction id {prediction_id[:80]!r} is not a lowercase UUID4, optionally followed by /<row>",
            field="prediction_id")


def check_feedback(feedback: predictions_pb2.FeedbackReceived, now: datetime) -> None:
    """Raise ``InvalidArgument`` naming what is wrong with a label."""
    check_prediction_id(feedback.prediction_id)
    kind = feedback.label.WhichOneof("value")
    if kind is None:
        raise InvalidArgument("the label has no value: give class_index, class_label or number", field="label")
    if kind == "number" and not math.isfinite(feedback.label.number):
        raise InvalidArgument(f"label number {feedback.label.number} is not finite", field="label.number")
    if kind == "class_index" and feedback.label.class_index < 0:
        raise InvalidArgument(f"label class_index {feedback.label.class_index} is negative", field="label.class_index")
    if kind == "class_label" and not feedback.label.class_label.strip():
        raise InvalidArgument("label class_label is empty", field="label.class_label")
    if not feedback.HasField("event_time") or feedback.event_time.seconds <= 0:
        raise InvalidArgument("event_time is required", field="event_time")
    if feedback.event_time.seconds + 1 > (now + MAX_FUTURE_SKEW).timestamp():  # the cheap test first
        event_time = feedback.event_time.ToDatetime(tzinfo=UTC)
        if event_time > now + MAX_FUTURE_SKEW:
            raise InvalidArgument(f"event_time {event_time.isoformat()} is in the future", field="event_time")


class Score(NamedTuple):
    """How one prediction fared against its label (a named tuple: one is made per join)."""

    task: str  # "classification" | "regression"
    correct: bool = False
    predicted_class: int | None = None
    label_class: int | None = None
    log_loss: float | None = None
    error: float = 0.0


def _outputs(prediction: predictions_pb2.PredictionLogged) -> tuple[list[float] | None, list[float] | None]:
    """The first 'probabilities' and the first 'prediction' output tensors' values (one pass)."""
    probabilities = values = None
    for tensor in prediction.outputs:
        name = tensor.name
        if name == "probabilities":
            return list(tensor.fp_contents), None
        if name == "prediction" and values is None:
            values = list(tensor.fp_contents)
    return probabilities, values


def score(prediction: predictions_pb2.PredictionLogged, feedback: predictions_pb2.FeedbackReceived) -> Score:
    """Score a prediction against its label; ``InvalidArgument`` if the label type does not
    fit the model's outputs (a classifier needs a class, a regressor a number)."""
    probabilities, values = _outputs(prediction)
    label = feedback.label
    kind = label.WhichOneof("value")
    if probabilities is not None:
        if not probabilities:
            raise InvalidArgument("the prediction's probabilities tensor is empty", field="outputs")
        if kind == "number":
            raise InvalidArgument("a classifier's prediction needs a class label, not a number", field="label")
        if kind == "class_label":
            # Class names do not travel with a prediction: a class_label must be a decimal index.
            text = label.class_label.strip()
            if not text.isdigit():
                raise InvalidArgument(f"class label {text!r} is not a known class name; send class_index",
                                      field="label.class_label")
            label_class = int(text)
        else:
            label_class = label.class_index
        if label_class >= len(probabilities):
            raise InvalidArgument(f"class index {label_class} is out of range for {len(probabilities)} classes",
                                  field="label.class_index")
        # the first of equal maxima, as max(range(n), key=probabilities.__getitem__)
        predicted = probabilities.index(max(probabilities))
        p = min(max(probabilities[label_class], EPS), 1.0)
        correct = predicted == label_class
        return Score("classification", correct, predicted, label_class, -math.log(p), 0.0 if correct else 1.0)
    if not values:
        raise InvalidArgument("the prediction has neither a 'probabilities' nor a 'prediction' output",
                              field="outputs")
    if kind != "number":
        raise InvalidArgument("a regressor's prediction needs a number label, not a class", field="label")
    return Score("regression", False, None, None, None, values[0] - label.number)


@dataclass(slots=True)
class LabelState:
    """A prediction's label as the join state holds it: the value with the latest event time."""

    event_time: datetime
    value: str
    revision: int
    #: The label that last set or refreshed this state; None: as held, unchanged.
    feedback: predictions_pb2.FeedbackReceived | None = None


#: A change of a held label: revision, old value, new value, old event time, new event time.
Change = tuple[int, str, str, datetime, datetime]


def apply_label(state: LabelState | None, event_time: datetime, value: str,
                feedback: predictions_pb2.FeedbackReceived, changes: list[Change]) -> tuple[LabelState, str]:
    """Apply one arriving label to a prediction's label state; returns the new state and the
    outcome: ``new`` (none held), ``duplicate`` (same value; a later event time refreshes the
    held time, so an older conflicting label that comes after it stays stale), ``changed``
    (a different value with a later event time: revision + 1, the change appended to
    ``changes``) or ``stale`` (a different value, not later: ignored).

    Applied to a partition's labels in arrival order, one at a time or a batch at once, this
    gives the same state, revisions and recorded changes, and applying an already applied
    label again changes nothing (a redelivery after a crash is a duplicate or stale)."""
    if state is None:
        return LabelState(event_time, value, 0, feedback), "new"
    if value == state.value:
        if event_time > state.event_time:
            state.event_time, state.feedback = event_time, feedback
        return state, "duplicate"
    if event_time > state.event_time:
        revision = state.revision + 1
        changes.append((revision, state.value, value, state.event_time, event_time))
        return LabelState(event_time, value, revision, feedback), "changed"
    return state, "stale"


def labeled_event_id(prediction_id: str, version: int, variant: int, revision: int) -> str:
    """The CloudEvents id of a LabeledPrediction: a re-emission after a crash keeps it."""
    return derive_event_id(f"{prediction_id}\n{version}\n{variant}", f"labeled/{revision}")


def label_delay_ms(prediction: predictions_pb2.PredictionLogged, feedback: predictions_pb2.FeedbackReceived) -> int:
    """Milliseconds from serving to the label's event time (0 if the label claims to be earlier)."""
    served, labelled = prediction.served_at, feedback.event_time
    micros = (labelled.seconds - served.seconds) * 1_000_000 + labelled.nanos // 1000 - served.nanos // 1000
    return max(0, micros // 1000)


def macro_f1(pairs: Iterable[tuple[int, int, int]]) -> float:
    """Macro F1 over classes from (predicted, actual, count) rows."""
    tp: dict[int, int] = {}
    fp: dict[int, int] = {}
    fn: dict[int, int] = {}
    for predicted, actual, count in pairs:
        if predicted == actual:
            tp[actual] = tp.get(actual, 0) + count
        else:
            fp[predicted] = fp.get(predicted, 0) + count
            fn[actual] = fn.get(actual, 0) + count
    classes = set(tp) | set(fp) | set(fn)
    if not classes:
        return 0.0
    total = 0.0
    for c in classes:
        t = tp.get(c, 0)
        denominator = 2 * t + fp.get(c, 0) + fn.get(c, 0)
        total += (2 * t / denominator) if denominator else 0.0
    return total / len(classes)


_DOUBLE = struct.Struct("<d")


class LabeledBytes:
    """Serializes ``LabeledPrediction`` records from the serialized prediction and label the
    join already holds (stored payloads), without parsing them into the record and
    serializing it again: a message field is its tag, its length and the message's bytes, so
    the record is those pieces end to end. The bytes equal
    ``LabeledPrediction(prediction=..., feedback=..., joined_at=..., ...).SerializeToString()``
    (fields in number order; proto3 scalars left out when zero). ``joined_at`` is the same for
    every record of a batch, so it is encoded once."""

    def __init__(self, joined_at: bytes) -> None:
        self._joined_at = b"\x1a" + varint(len(joined_at)) + joined_at  # field 3, length-delimited

    def record(self, prediction: bytes, feedback: bytes, label_delay_ms: int, correct: bool, error: float,
               revision: int) -> bytes:
        """``label_delay_ms`` and ``revision`` are never negative (``label_delay_ms`` clamps, revisions count up)."""
        parts = [b"\x0a", varint(len(prediction)), prediction, b"\x12", varint(len(feedback)), feedback,
                 self._joined_at]
        if label_delay_ms:
            parts += (b"\x20", varint(label_delay_ms))  # field 4, varint
        if correct:
            parts.append(b"\x28\x01")  # field 5, varint
        packed = _DOUBLE.pack(error)
        if packed != b"\x00" * 8:  # -0.0 is written, as protobuf writes it
            parts += (b"\x31", packed)  # field 6, 64-bit
        if revision:
            parts += (b"\x38", varint(revision))  # field 7, varint
        return b"".join(parts)


#: A ``LabeledPrediction`` already serialized (``LabeledBytes``), as an event's message, so the
#: record is not built as a message to be serialized again.
SerializedLabeled = serialized(predictions_pb2.LabeledPrediction)
