"""Routing stage: predictions (keyed by prediction id) and labelled predictions, re-keyed
by model onto loopline.drift-inputs.v1, so that one partition, hence one replica,
sees all of a model's traffic and owns its detectors (docs/drift.md, "Two replicas").

One ``DriftInputs`` record per model and polled partition batch (cut where it would
pass ``MAX_RECORD_BYTES``) carries that model's events in order: the detect stage then decodes one CloudEvent per batch, not one per
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
from loopline_core.kafka.wire import serialized, varint

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
    same polled batch gives the same id. Each event is serialized once, trimmed, and
    the records are put together in wire form (``EncodedDriftInputs``): copying the
    decoded events into a ``DriftInputs`` would cost more than all the rest."""
    by_model: dict[str, tuple[list[bytes], list[bytes], list[Delivery]]] = {}
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
        entry[0 if is_prediction else 1].append(message.SerializeToString())
        entry[2].append(delivery)
    out = []
    for model, (predictions, labeled, sources) in by_model.items():
        first = sources[0]
        cause = first.event.id if len(sources) == 1 else f"{first.event.id}\n{sources[-1].event.id}\n{len(sources)}"
        head = dipb.DriftInputs(model=model, source_topic=first.topic, source_partition=first.partition,
                                source_offset=first.offset).SerializeToString()
        parts = _split(head, [_PREDICTION + varint(len(p)) + p for p in predictions]
                       + [_LABELED + varint(len(o)) + o for o in labeled])
        for i, data in enumerate(parts):
            purpose = f"drift-route/{model}" if len(parts) == 1 else f"drift-route/{model}/{i}"
            out.append(Outgoing(model, EncodedDriftInputs(data), subject=model,  # type: ignore[arg-type]
                                event_id=derive_event_id(cause, purpose)))
    return out, shadows


#: Largest ``DriftInputs`` payload; larger batches are cut, in order (a record must stay
#: well below the broker's message.max.bytes, 1 MiB by default).
MAX_RECORD_BYTES = 256 * 1024
#: Field tags of ``DriftInputs.predictions`` (2) and ``labeled`` (3), length-delimited.
_PREDICTION, _LABELED = b"\x12", b"\x1a"


def _split(head: bytes, fields: list[bytes]) -> list[bytes]:
    """``head`` (model and source) and the events' fields, as few records as
    ``MAX_RECORD_BYTES`` allows, the events in order (an event too large alone is a record alone)."""
    records: list[bytes] = []
    chunk: list[bytes] = [head]
    size = len(head)
    for field in fields:
        if size + len(field) > MAX_RECORD_BYTES and len(chunk) > 1:
            records.append(b"".join(chunk))
            chunk, size = [head], len(head)
        chunk.append(field)
        size += len(field)
    records.append(b"".join(chunk))
    return records


#: A ``DriftInputs`` in wire form, as a producer reads a message (``decoded()`` parses it back).
EncodedDriftInputs = serialized(dipb.DriftInputs)


class Router:
    def __init__(self, producer: EventProducer) -> None:
        self._producer = producer
        self.shadow_skipped = 0

    async def on_batch(self, deliveries: Sequence[Delivery]) -> None:
        out, shadows = batched(deliveries)
        self.shadow_skipped += shadows
        if out:
            await self._producer.send_batch(DRIFT_INPUTS, out)
