"""Prediction and label events for tests and ``make bench-drift``: the shapes the
gateway and the feedback collector log (features FP32 [1, n], one row per event)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp
from loopline.common.v1 import common_pb2 as cpb
from loopline.events.v1 import predictions_pb2 as epb


def _ts(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def prediction(model: str, version: int, row: Sequence[float], *, at: datetime,
               variant: int = cpb.VARIANT_CHAMPION, prediction_id: str | None = None) -> epb.PredictionLogged:
    pid = prediction_id or str(uuid.uuid4())
    trace = f"00-{uuid.uuid5(uuid.NAMESPACE_URL, pid).hex}-{pid.replace('-', '')[:16]}-01"
    return epb.PredictionLogged(
        prediction_id=pid, model=model, version=version, variant=variant,  # type: ignore[arg-type]
        inputs=[cpb.Tensor(name="features", datatype="FP32", shape=[1, len(row)], fp_contents=list(row))],
        outputs=[cpb.Tensor(name="probabilities", datatype="FP32", shape=[1, 2], fp_contents=[0.5, 0.5])],
        served_at=_ts(at), trace=cpb.TraceContext(traceparent=trace))


def labeled(model: str, version: int, correct: bool, *, at: datetime,
            variant: int = cpb.VARIANT_CHAMPION) -> epb.LabeledPrediction:
    p = prediction(model, version, [0.0], at=at, variant=variant)
    return epb.LabeledPrediction(prediction=p, correct=correct, joined_at=_ts(at), error=0.0 if correct else 1.0)
