"""The stream join: one call per polled partition batch of loopline.predictions.v1 and
loopline.feedback.v1 (co-partitioned by prediction id).

In one PostgreSQL transaction per batch: store predictions (idempotent), upsert labels
(the latest event time wins, a change bumps the revision and is recorded), find every
prediction ⋈ label whose joined record is missing or older than the label's revision,
write those joined records, and publish them to loopline.labeled.v1 before committing.
A crash before the commit re-runs the batch (the offset is committed after the handler),
and the re-run republishes the same records under the same CloudEvents ids
(prediction_id + version + variant + revision), so consumers see each join once by id.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
from google.protobuf.message import Message
from loopline.events.v1 import predictions_pb2
from loopline_core.errors import InvalidArgument
from loopline_core.kafka.handlers import Delivery
from loopline_core.kafka.producer import EventProducer, Outgoing
from loopline_core.kafka.topics import LABELED
from prometheus_client import CollectorRegistry, Counter, Histogram

from loopline_feedback_collector import domain

log = logging.getLogger(__name__)


def label_value(label: Message) -> str:
    kind = label.WhichOneof("value")  # type: ignore[attr-defined]
    return f"{kind}:{getattr(label, kind)!r}" if kind else "none"


@dataclass
class JoinMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.joins = Counter("feedback_joins", "LabeledPrediction records emitted", ["model", "variant"], registry=r)
        self.labels = Counter("feedback_labels", "labels consumed by outcome", ["outcome"], registry=r)
        self.predictions = Counter("feedback_predictions", "predictions consumed", registry=r)
        self.rejected = Counter("feedback_rejected", "labels whose type does not fit the model", registry=r)
        self.expired = Counter("feedback_expired", "unmatched items expired", ["kind"], registry=r)
        self.batch_seconds = Histogram("feedback_batch_seconds", "time to join one batch", registry=r)


class Joiner:
    def __init__(self, pool: Callable[[], asyncpg.Pool], producer: EventProducer, *,
                 metrics: JoinMetrics | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._pool = pool
        self._producer = producer
        self.metrics = metrics or JoinMetrics()
        self._clock = clock

    async def handle_batch(self, deliveries: list[Delivery[Message]]) -> None:
        started = time.perf_counter()
        predictions: dict[tuple[str, int, int], predictions_pb2.PredictionLogged] = {}
        labels: dict[str, predictions_pb2.FeedbackReceived] = {}
        now = self._clock()
        for delivery in deliveries:
            data = delivery.event.data
            if isinstance(data, predictions_pb2.PredictionLogged):
                domain.check_prediction_id(data.prediction_id)
                predictions[(data.prediction_id, data.version, int(data.variant))] = data
            elif isinstance(data, predictions_pb2.FeedbackReceived):
                domain.check_feedback(data, now)  # InvalidArgument: dead-lettered record by record
                if not data.HasField("received_at"):
                    data.received_at.FromDatetime(now)
                held = labels.get(data.prediction_id)
                if held is None or _newer(data, held):
                    labels[data.prediction_id] = data
        async with self._pool().acquire() as conn, conn.transaction():
            if predictions:
                await conn.executemany(
                    "INSERT INTO predictions (prediction_id, version, variant, model, served_at, payload)"
                    " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                    [(pid, version, variant, p.model, p.served_at.ToDatetime(tzinfo=UTC), p.SerializeToString())
                     for (pid, version, variant), p in predictions.items()])
                self.metrics.predictions.inc(len(predictions))
            if labels:
                await self._upsert_labels(conn, labels)
            ids = sorted({pid for pid, _, _ in predictions} | set(labels))
            outgoing = await self._join(conn, ids, now)
            if outgoing:
                await self._producer.send_batch(LABELED, outgoing)
        self.metrics.batch_seconds.observe(time.perf_counter() - started)

    async def _upsert_labels(self, conn: asyncpg.Connection,
                             labels: dict[str, predictions_pb2.FeedbackReceived]) -> None:
        rows = await conn.fetch(
            "SELECT prediction_id, event_time, label_value, revision FROM labels"
            " WHERE prediction_id = ANY($1::text[]) FOR UPDATE", list(labels))
        held = {row["prediction_id"]: row for row in rows}
        inserts, updates, changes = [], [], []
        for pid, feedback in labels.items():
            value = label_value(feedback.label)
            event_time = feedback.event_time.ToDatetime(tzinfo=UTC)
            row = held.get(pid)
            if row is None:
                inserts.append((pid, event_time, feedback.received_at.ToDatetime(tzinfo=UTC), value,
                                feedback.SerializeToString()))
                self.metrics.labels.labels("new").inc()
            elif row["label_value"] == value:
                self.metrics.labels.labels("duplicate").inc()
            elif event_time > row["event_time"]:
                revision = row["revision"] + 1
                updates.append((pid, event_time, value, feedback.SerializeToString(), revision))
                changes.append((pid, revision, row["label_value"], value, row["event_time"], event_time))
                self.metrics.labels.labels("changed").inc()
            else:
                self.metrics.labels.labels("stale").inc()
        if inserts:
            await conn.executemany(
                "INSERT INTO labels (prediction_id, event_time, received_at, label_value, payload)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING", inserts)
        if updates:
            await conn.executemany(
                "UPDATE labels SET event_time = $2, label_value = $3, payload = $4, revision = $5, expired = false"
                " WHERE prediction_id = $1", updates)
            await conn.executemany(
                "INSERT INTO label_changes (prediction_id, revision, old_value, new_value, old_event_time,"
                " new_event_time) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING", changes)

    async def _join(self, conn: asyncpg.Connection, ids: list[str], now: datetime) -> list[Outgoing]:
        if not ids:
            return []
        rows = await conn.fetch(
            "SELECT p.prediction_id, p.version, p.variant, p.model, p.served_at, p.payload AS prediction,"
            "       l.payload AS feedback, l.revision"
            "  FROM predictions p JOIN labels l USING (prediction_id)"
            "  LEFT JOIN joined j ON j.prediction_id = p.prediction_id AND j.version = p.version"
            "       AND j.variant = p.variant"
            "  LEFT JOIN rejected r ON r.prediction_id = p.prediction_id AND r.version = p.version"
            "       AND r.variant = p.variant"
            " WHERE p.prediction_id = ANY($1::text[]) AND (j.prediction_id IS NULL OR j.revision < l.revision)"
            "   AND NOT p.expired AND NOT l.expired"
            "   AND (r.prediction_id IS NULL OR j.prediction_id IS NOT NULL)", ids)
        outgoing: list[Outgoing] = []
        joined_rows, rejected_rows = [], []
        for row in rows:
            prediction = predictions_pb2.PredictionLogged.FromString(row["prediction"])
            feedback = predictions_pb2.FeedbackReceived.FromString(row["feedback"])
            key = (row["prediction_id"], row["version"], row["variant"])
            try:
                scored = domain.score(prediction, feedback)
            except InvalidArgument as exc:
                rejected_rows.append((*key, str(exc)))
                self.metrics.rejected.inc()
                continue
            delay = domain.label_delay_ms(prediction, feedback)
            record = predictions_pb2.LabeledPrediction(
                prediction=prediction, feedback=feedback, label_delay_ms=delay, correct=scored.correct,
                error=scored.error, revision=row["revision"])
            record.joined_at.FromDatetime(now)
            event_id = domain.labeled_event_id(*key, row["revision"])
            joined_rows.append((*key, row["model"], row["revision"], event_id, scored.task, row["served_at"], now,
                                delay, scored.correct, scored.predicted_class, scored.label_class, scored.log_loss,
                                scored.error, record.SerializeToString()))
            outgoing.append(Outgoing(row["model"], record, subject=row["prediction_id"], event_id=event_id))
            self.metrics.joins.labels(row["model"], str(row["variant"])).inc()
        if joined_rows:
            await conn.executemany(
                "INSERT INTO joined (prediction_id, version, variant, model, revision, event_id, task, served_at,"
                " joined_at, label_delay_ms, correct, predicted_class, label_class, log_loss, error, payload)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
                " ON CONFLICT (prediction_id, version, variant) DO UPDATE SET revision = excluded.revision,"
                " event_id = excluded.event_id, joined_at = excluded.joined_at,"
                " label_delay_ms = excluded.label_delay_ms, correct = excluded.correct,"
                " predicted_class = excluded.predicted_class, label_class = excluded.label_class,"
                " log_loss = excluded.log_loss, error = excluded.error, payload = excluded.payload"
                " WHERE joined.revision < excluded.revision", joined_rows)
            await conn.execute("UPDATE labels SET matched = true, expired = false"
                               " WHERE prediction_id = ANY($1::text[])",
                               sorted({row[0] for row in joined_rows}))
        if rejected_rows:
            await conn.executemany(
                "INSERT INTO rejected (prediction_id, version, variant, reason) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT DO NOTHING", rejected_rows)
            for pid, version, variant, reason in rejected_rows:
                log.warning("label of %s (version %s, variant %s) rejected: %s", pid, version, variant, reason)
        return outgoing

    async def expire(self, window: timedelta) -> dict[str, int]:
        """Mark unmatched predictions and labels older than ``window`` (by arrival) expired, and count them."""
        cutoff = self._clock() - window
        async with self._pool().acquire() as conn, conn.transaction():
            predictions = await conn.fetchval(
                "WITH gone AS (UPDATE predictions p SET expired = true WHERE NOT p.expired AND p.received_at < $1"
                " AND NOT EXISTS (SELECT 1 FROM labels l WHERE l.prediction_id = p.prediction_id)"
                " RETURNING 1) SELECT count(*) FROM gone", cutoff)
            labels = await conn.fetchval(
                "WITH gone AS (UPDATE labels SET expired = true WHERE NOT matched AND NOT expired"
                " AND received_at < $1 RETURNING 1) SELECT count(*) FROM gone", cutoff)
            for kind, count in (("predictions", predictions), ("labels", labels)):
                if count:
                    await conn.execute(
                        "INSERT INTO expiry_counts (kind, count) VALUES ($1, $2)"
                        " ON CONFLICT (kind) DO UPDATE SET count = expiry_counts.count + excluded.count",
                        kind, count)
                    self.metrics.expired.labels(kind).inc(count)
        return {"predictions": predictions, "labels": labels}


def _newer(candidate: predictions_pb2.FeedbackReceived, held: predictions_pb2.FeedbackReceived) -> bool:
    return candidate.event_time.ToDatetime() > held.event_time.ToDatetime()


__all__ = ["Joiner", "JoinMetrics"]
