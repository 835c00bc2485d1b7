"""The feedback benchmark's events: a served prediction and the label that joins it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from loopline.common.v1 import common_pb2
from loopline.events.v1 import predictions_pb2


def prediction(model: str, pid: str) -> predictions_pb2.PredictionLogged:
    p = predictions_pb2.PredictionLogged(prediction_id=pid, model=model, version=1,
                                         variant=common_pb2.VARIANT_CHAMPION)
    p.outputs.add(name="probabilities", datatype="FP32", shape=[1, 3], fp_contents=[0.2, 0.7, 0.1])
    p.served_at.FromDatetime(datetime.now(UTC))
    return p


def label(pid: str) -> predictions_pb2.FeedbackReceived:
    f = predictions_pb2.FeedbackReceived(feedback_id=str(uuid.uuid4()), prediction_id=pid,
                                         label=common_pb2.Label(class_index=1), source="bench")
    f.event_time.FromDatetime(datetime.now(UTC))
    return f
