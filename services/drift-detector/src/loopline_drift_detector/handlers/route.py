"""Routing stage: predictions (keyed by prediction id) and labelled predictions, re-keyed
by model onto loopline.drift-inputs.v1, so that one partition, hence one replica,
sees all of a model's traffic and owns its detectors (docs/drift.md, "Two replicas").

One ``DriftInputs`` record per model and polled partition batch carries that model's
events in order: the detect stage then decodes one CloudEvent per batch, not one per
event. Shadow predictions are left out here: they repeat the primary's inputs. Their
labelled outcomes are forwarded, and count for the shadow's own version. Every event
is checked here (features tensor, model version, event time): a record that breaks
the schema raises ``MalformedEvent`` before anything of the batch is sent, so the
consumer dead-letters exactly it, and no bad event reaches a batch.
"""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.message import Message
from loopline.common.v1 import common_pb2 as cpb
from loopline.events.v1 import drift_inputs_pb2 as dipb
from loopline.events.v1 import predictions_pb2 as epb
from loopline_core.errors import MalformedEvent
from loopline_core.kafka.cloudevents import derive_event_id
from loopline_core.kafka.handlers import Delivery
from loopline_core.kafka.producer import EventProducer, Outgoing
from loopline_core.kafka.topics import DRIFT_INPUTS

from loopline_drift_detector.handlers.inputs import check_features


def _check_time(stamp: object, field: str) -> None:
    if not (stamp.seconds or stamp.nanos):  # type: ignore[attr-defined]
        raise MalformedEvent("the event carries no time", field=field)


def routed(delivery: Delivery) -> Message | None:
    """What goes on to loopline.drift-inputs.v1 for one record (None: a shadow). The
    decoded message is checked and trimmed in place (it is this handler's own copy; a
    dead letter forwards the raw record)."""
    message = delivery.event.data
    if type(message) is epb.PredictionLogged:
        if message.variant == cpb.VARIANT_SHADOW:
            return None
        check_features(message.inputs)
        _check_time(message.served_at, "served_at")
        prediction = message
        del message.outputs[:]
    elif type(message) is epb.LabeledPrediction:
        _check_time(message.joined_at, "joined_at")
        prediction = message.prediction
        del prediction.inputs[:]
        del prediction.outputs[:]
    else:
        raise MalformedEvent(f"unexpected event type {delivery.event.type}", field="type")
    if not prediction.model or prediction.version <= 0:
        raise MalformedEvent(f"prediction {prediction.prediction_id!r} names no model version "
                             f"(model={prediction.model!r}, version={prediction.version})", field="model")
    return message


def batched(deliveries: Sequence[Delivery]) -> tuple[list[Outgoing], int]:
    """One ``DriftInputs`` per model, in order of first appearance, and the shadows left out.

    The record's id derives from its first and last source events, so re-routing the
    same polled batch gives the same id."""
    by_model: dict[str, tuple[list[Message], list[Message], list[Delivery]]] = {}
    shadows = 0
    for delivery in deliveries:
        message = routed(delivery)
        if message is None:
            shadows += 1
            continue
        is_prediction = type(message) is epb.PredictionLogged
        model = message.model if is_prediction else message.prediction.model
        entry = by_model.get(model)
        if entry is None:
            entry = by_model[model] = ([], [], [])
        entry[0 if is_prediction else 1].append(message)
        entry[2].append(delivery)
    out = []
    for model, (predictions, labeled, sources) in by_model.items():
        first = sources[0]
        cause = first.event.id if len(sources) == 1 else f"{first.event.id}\n{sources[-1].event.id}\n{len(sources)}"
        parts = _split(dipb.DriftInputs(model=model, predictions=predictions, labeled=labeled))
        for i, inputs in enumerate(parts):
            inputs.source_topic, inputs.source_partition, inputs.source_offset = (first.topic, first.partition,
                                                                                  first.offset)
            purpose = f"drift-route/{model}" if len(parts) == 1 else f"drift-route/{model}/{i}"
            out.append(Outgoing(model, inputs, subject=model, event_id=derive_event_id(cause, purpose)))
    return out, shadows


#: Largest ``DriftInputs`` payload; larger batches are cut in halves, in order (a
#: record must stay well below the broker's message.max.bytes, 1 MiB by default).
MAX_RECORD_BYTES = 256 * 1024


def _split(inputs: dipb.DriftInputs) -> list[dipb.DriftInputs]:
    if inputs.ByteSize() <= MAX_RECORD_BYTES or len(inputs.predictions) + len(inputs.labeled) <= 1:
        return [inputs]
    predictions, labeled = list(inputs.predictions), list(inputs.labeled)
    if len(predictions) > 1 or not labeled:
        half = len(predictions) // 2
        first = dipb.DriftInputs(model=inputs.model, predictions=predictions[:half])
        second = dipb.DriftInputs(model=inputs.model, predictions=predictions[half:], labeled=labeled)
    else:
        half = len(labeled) // 2
        first = dipb.DriftInputs(model=inputs.model, predictions=predictions, labeled=labeled[:half])
        second = dipb.DriftInputs(model=inputs.model, labeled=labeled[half:])
    return _split(first) + _split(second)


class Router:
    def __init__(self, producer: EventProducer) -> None:
        self._producer = producer
        self.shadow_skipped = 0

    async def on_batch(self, deliveries: Sequence[Delivery]) -> None:
        out, shadows = batched(deliveries)
        self.shadow_skipped += shadows
        if out:
            await self._producer.send_batch(DRIFT_INPUTS, out)
