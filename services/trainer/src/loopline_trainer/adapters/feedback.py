"""The feedback store over gRPC: ExportLabeled turned into a snapshot."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import grpc
import numpy as np
from loopline.feedback.v1 import feedback_pb2 as pb
from loopline.feedback.v1.feedback_pb2_grpc import FeedbackServiceStub

from loopline_core.errors import InvalidArgument

from loopline_trainer.adapters.grpc_errors import translated
from loopline_trainer.domain.dataset import Snapshot


def _label(record: object, class_names: Sequence[str]) -> float | None:
    label = record.feedback.label  # type: ignore[attr-defined]
    kind = label.WhichOneof("value")
    if kind == "class_index":
        return float(label.class_index)
    if kind == "number":
        return label.number
    if kind == "class_label" and label.class_label in class_names:
        return float(list(class_names).index(label.class_label))
    return None


class GrpcFeedback:
    def __init__(self, channel: Callable[[], grpc.aio.Channel], timeout_s: float = 60.0) -> None:
        self._channel = channel
        self._timeout = timeout_s

    async def export(self, model: str, *, since: datetime | None, until: datetime | None, limit: int,
                     feature_names: Sequence[str] | None, class_names: Sequence[str] = ()) -> Snapshot:
        request = pb.ExportLabeledRequest(model=model, limit=limit)
        if since:
            request.since.FromDatetime(since)
        if until:
            request.until.FromDatetime(until)
        rows: list[list[float]] = []
        labels: list[float] = []
        times: list[datetime | None] = []
        stream = FeedbackServiceStub(self._channel()).ExportLabeled(request, timeout=self._timeout)
        with translated("feedback collector", "ExportLabeled"):
            async for page in stream:
                for record in page.records:
                    features = next((t for t in record.prediction.inputs if t.name == "features"), None)
                    label = _label(record, class_names)
                    if features is None or label is None or not features.fp_contents:
                        continue  # not a tabular prediction, or a label this model cannot use
                    rows.append(list(features.fp_contents))
                    labels.append(label)
                    times.append(record.prediction.served_at.ToDatetime(tzinfo=UTC)
                                 if record.prediction.HasField("served_at") else None)
        width = len(feature_names) if feature_names else (len(rows[0]) if rows else 0)
        if any(len(r) != width for r in rows):
            raise InvalidArgument(f"labelled predictions of {model!r} do not all have {width} features",
                                  field="features")
        names = tuple(feature_names) if feature_names else tuple(f"x{i}" for i in range(width))
        return Snapshot(names, np.asarray(rows, dtype=np.float32).reshape(len(rows), width),
                        np.asarray(labels, dtype=np.float64), tuple(times))
