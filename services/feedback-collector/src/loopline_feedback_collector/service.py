"""Label ingest (validated, published to loopline.feedback.v1 keyed by prediction id,
answered after the broker's ack), live quality and the trainer's export, over the store."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from loopline.events.v1 import predictions_pb2
from loopline.feedback.v1 import feedback_pb2
from loopline_core.errors import InvalidArgument
from loopline_core.kafka.cloudevents import derive_event_id
from loopline_core.kafka.producer import EventProducer, Outgoing
from loopline_core.kafka.topics import FEEDBACK

from loopline_feedback_collector import domain
from loopline_feedback_collector.joiner import label_value

SHADOW = 3  # loopline.common.v1.VARIANT_SHADOW


@dataclass(frozen=True)
class Accepted:
    feedback_id: str
    prediction_id: str


class FeedbackService:
    def __init__(self, pool: Callable[[], asyncpg.Pool], producer: EventProducer, *, max_batch: int,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._pool = pool
        self._producer = producer
        self.max_batch = max_batch
        self._clock = clock

    def _event(self, request: feedback_pb2.SubmitFeedbackRequest, now: datetime) -> predictions_pb2.FeedbackReceived:
        event = predictions_pb2.FeedbackReceived(prediction_id=request.prediction_id, source=request.source or "api")
        event.label.CopyFrom(request.label)
        if request.HasField("event_time"):
            event.event_time.CopyFrom(request.event_time)
        event.received_at.FromDatetime(now)
        domain.check_feedback(event, now)
        # The same label for the same prediction and time gets the same id: resubmission is a no-op.
        event.feedback_id = derive_event_id(
            f"{event.prediction_id}\n{label_value(event.label)}\n{event.event_time.ToJsonString()}", "feedback")
        return event

    async def submit(self, requests: Sequence[feedback_pb2.SubmitFeedbackRequest]) -> list[Accepted]:
        """Validate every label (``InvalidArgument`` naming the first bad one by index),
        then publish them all; returns after the broker acknowledged each."""
        if not requests:
            raise InvalidArgument("the batch is empty", field="labels")
        if len(requests) > self.max_batch:
            raise InvalidArgument(f"the batch has {len(requests)} labels; at most {self.max_batch} per request",
                                  field="labels")
        now = self._clock()
        events = []
        for index, request in enumerate(requests):
            try:
                events.append(self._event(request, now))
            except InvalidArgument as exc:
                prefix = f"labels[{index}]: " if len(requests) > 1 else ""
                raise InvalidArgument(f"{prefix}{exc.message}", field=exc.field) from None
        await self._producer.send_batch(FEEDBACK, [Outgoing(e.prediction_id, e, event_id=e.feedback_id)
                                                   for e in events])
        return [Accepted(e.feedback_id, e.prediction_id) for e in events]

    async def quality(self, model: str, version: int = 0, since: datetime | None = None
                      ) -> feedback_pb2.GetQualityResponse:
        if not model:
            raise InvalidArgument("model is required", field="model")
        args: list[object] = [model, version or None, since]
        where = "model = $1 AND ($2::bigint IS NULL OR version = $2) AND ($3::timestamptz IS NULL OR served_at >= $3)"
        async with self._pool().acquire() as conn:
            groups = await conn.fetch(
                f"SELECT version, variant, min(task) AS task, count(*) AS n, count(*) FILTER (WHERE correct) AS correct,"
                f" avg(log_loss) AS log_loss, avg(abs(error)) AS mae, sum(error) AS sum_error,"
                f" sum(error * error) AS sum_sq, percentile_cont(0.5) WITHIN GROUP (ORDER BY label_delay_ms) AS delay"
                f" FROM joined WHERE {where} GROUP BY version, variant ORDER BY version, variant", *args)
            confusion = await conn.fetch(
                f"SELECT version, variant, predicted_class, label_class, count(*) AS n FROM joined"
                f" WHERE {where} AND task = 'classification' GROUP BY 1, 2, 3, 4", *args)
            served = await conn.fetch(
                f"SELECT version, variant, count(*) AS n FROM predictions WHERE {where}"
                f" GROUP BY 1, 2", *args)
        served_by = {(r["version"], r["variant"]): r["n"] for r in served}
        pairs: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
        for r in confusion:
            pairs.setdefault((r["version"], r["variant"]), []).append((r["predicted_class"], r["label_class"], r["n"]))
        response = feedback_pb2.GetQualityResponse(model=model)
        for g in groups:
            key = (g["version"], g["variant"])
            n = g["n"]
            window = response.windows.add(version=g["version"], variant=g["variant"],
                                          window=f"since:{since.isoformat()}" if since else "all",
                                          labelled=n, label_delay_p50_ms=float(g["delay"] or 0.0))
            window.label_coverage = n / served_by[key] if served_by.get(key) else 0.0
            if g["task"] == "classification":
                window.metrics["accuracy"] = g["correct"] / n
                window.metrics["correct"] = float(g["correct"])
                window.metrics["log_loss"] = float(g["log_loss"] or 0.0)
                window.metrics["f1"] = domain.macro_f1(pairs.get(key, []))
            else:
                window.metrics["mae"] = float(g["mae"])
                window.metrics["rmse"] = math.sqrt(float(g["sum_sq"]) / n)
                window.metrics["sum_error"] = float(g["sum_error"])
                window.metrics["sum_squared_error"] = float(g["sum_sq"])
        return response

    async def export(self, request: feedback_pb2.ExportLabeledRequest, chunk: int = 500
                     ) -> AsyncIterator[feedback_pb2.ExportLabeledResponse]:
        if not request.model:
            raise InvalidArgument("model is required", field="model")
        if request.limit < 0:
            raise InvalidArgument("limit must not be negative", field="limit")
        since = request.since.ToDatetime(tzinfo=UTC) if request.HasField("since") else None
        until = request.until.ToDatetime(tzinfo=UTC) if request.HasField("until") else None
        async with self._pool().acquire() as conn, conn.transaction():
            cursor = conn.cursor(
                "SELECT payload FROM joined WHERE model = $1 AND ($2::bigint IS NULL OR version = $2)"
                " AND ($3::timestamptz IS NULL OR served_at >= $3) AND ($4::timestamptz IS NULL OR served_at < $4)"
                " AND ($5 OR variant <> $6) ORDER BY served_at, prediction_id, version, variant"
                " LIMIT $7", request.model, request.version or None, since, until, request.include_shadow, SHADOW,
                request.limit or None)
            batch = feedback_pb2.ExportLabeledResponse()
            async for row in cursor:
                batch.records.add().MergeFromString(row["payload"])
                if len(batch.records) >= chunk:
                    yield batch
                    batch = feedback_pb2.ExportLabeledResponse()
            if batch.records:
                yield batch

    async def expired_counts(self) -> dict[str, int]:
        async with self._pool().acquire() as conn:
            rows = await conn.fetch("SELECT kind, count FROM expiry_counts")
        counts = {"predictions": 0, "labels": 0}
        counts.update({r["kind"]: r["count"] for r in rows})
        return counts

