"""Routing stage: predictions (keyed by prediction id) and labelled predictions, re-keyed
by model onto loopline.drift-inputs.v1, so that one partition, hence one replica,
sees all of a model's traffic and owns its detectors (docs/drift.md, "Two replicas").

Shadow predictions are left out here: they repeat the primary's inputs. Their
labelled outcomes are forwarded, and count for the shadow's own version. Records that
break the schema raise ``MalformedEvent`` before anything of the batch is sent, so the
consumer dead-letters exactly them.
"""

from __future__ import annotations

from collections.abc import Sequence

from loopline.common.v1 import common_pb2 as cpb
from loopline.events.v1 import predictions_pb2 as epb
from loopline_core.errors import MalformedEvent
from loopline_core.kafka.cloudevents import derive_event_id
from loopline_core.kafka.handlers import Delivery
from loopline_core.kafka.producer import EventProducer, Outgoing
from loopline_core.kafka.topics import DRIFT_INPUTS

from loopline_drift_detector.handlers.inputs import features_row


def routed(delivery: Delivery) -> Outgoing | None:
    """What goes on to loopline.drift-inputs.v1 for one record. The decoded message is
    trimmed in place (it is this handler's own copy; a dead letter forwards the raw record)."""
    message = delivery.event.data
    if type(message) is epb.PredictionLogged:
        if message.variant == cpb.VARIANT_SHADOW:
            return None
        features_row(message.inputs)
        prediction = slim = message
        del slim.outputs[:]
    elif type(message) is epb.LabeledPrediction:
        prediction = message.prediction
        slim = message
        del slim.prediction.inputs[:]
        del slim.prediction.outputs[:]
    else:
        raise MalformedEvent(f"unexpected event type {delivery.event.type}", field="type")
    if not prediction.model or prediction.version <= 0:
        raise MalformedEvent(f"prediction {prediction.prediction_id!r} names no model version "
                             f"(model={prediction.model!r}, version={prediction.version})", field="model")
    return Outgoing(prediction.model, slim, subject=f"{prediction.model}/{prediction.version}",
                    event_id=derive_event_id(delivery.event.id, "drift-route"))


class Router:
    def __init__(self, producer: EventProducer) -> None:
        self._producer = producer
        self.shadow_skipped = 0

    async def on_batch(self, deliveries: Sequence[Delivery]) -> None:
        out = []
        for delivery in deliveries:
            item = routed(delivery)
            if item is None:
                self.shadow_skipped += 1
            else:
                out.append(item)
        if out:
            await self._producer.send_batch(DRIFT_INPUTS, out)
