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

import collections
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from loopline.events.v1 import predictions_pb2
from loopline_core.db.pool import translated_errors
from loopline_core.errors import InvalidArgument
from loopline_core.kafka.handlers import Delivery
from loopline_core.kafka.producer import EventProducer, Outgoing
from loopline_core.kafka.topics import LABELED
from prometheus_client import CollectorRegistry, Counter, Histogram

from loopline_feedback_collector import domain
from loopline_feedback_collector import join_store as store

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
        self.phase_seconds = Histogram("feedback_batch_phase_seconds", "time per phase of a join batch: acquire"
                                       " (a connection), store, join, emit (to Kafka, acks), commit", ["phase"],
                                       registry=r)


class _Phases:
    def __init__(self, histogram: Histogram, started: float) -> None:
        self._histogram, self._last = histogram, started

    def done(self, phase: str) -> None:
        now = time.perf_counter()
        self._histogram.labels(phase).observe(now - self._last)
        self._last = now


class Joiner:
    def __init__(self, pool: Callable[[], asyncpg.Pool], producer: EventProducer, *,
                 metrics: JoinMetrics | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC), keep_connections: int = 6) -> None:
        self._pool = pool
        self._keep = keep_connections
        self._producer = producer
        self.metrics = metrics or JoinMetrics()
        self._clock = clock
        #: Connections kept between batches, one per partition lane in flight (at most
        #: ``keep_connections``, so that the pool has some left for the expiry sweep and the
        #: API): a batch takes one without the pool's acquire and reset round trip.
        self._kept: list[asyncpg.Connection] = []

    async def release_connections(self) -> None:
        """Give the kept connections back to the pool (when the join loop ends: the pool's
        close waits for every connection to be released)."""
        kept, self._kept = self._kept, []
        for conn in kept:
            with contextlib.suppress(Exception):
                await self._pool().release(conn)

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection for one batch: a kept one, or one from the pool. After a batch that
        succeeded it is kept (its transaction is committed: nothing to reset); after any
        error it goes back to the pool, which resets it or drops it if it is broken."""
        conn = self._kept.pop() if self._kept else await self._pool().acquire()
        try:
            yield conn
        except BaseException:
            with contextlib.suppress(Exception):
                await self._pool().release(conn)
            raise
        if conn.is_closed() or len(self._kept) >= self._keep:
            with contextlib.suppress(Exception):
                await self._pool().release(conn)
        else:
            self._kept.append(conn)

    async def handle_batch(self, deliveries: list[Delivery[Message]]) -> None:
        started = time.perf_counter()
        predictions: dict[tuple[str, int, int], predictions_pb2.PredictionLogged] = {}
        labels: dict[str, list[predictions_pb2.FeedbackReceived]] = {}
        now = self._clock()
        now_ts = Timestamp()
        now_ts.FromDatetime(now)
        for delivery in deliveries:
            data = delivery.event.data
            if isinstance(data, predictions_pb2.PredictionLogged):
                domain.check_prediction_id(data.prediction_id)
                predictions[(data.prediction_id, data.version, int(data.variant))] = data
            elif isinstance(data, predictions_pb2.FeedbackReceived):
                domain.check_feedback(data, now)  # InvalidArgument: dead-lettered record by record
                if not data.HasField("received_at"):
                    data.received_at.CopyFrom(now_ts)
                held = labels.get(data.prediction_id)
                if held is None:
                    labels[data.prediction_id] = [data]
                else:  # applied in arrival order (domain.apply_label), as if in batches of one
                    held.append(data)
        phases = _Phases(self.metrics.phase_seconds, started)
        # Driver errors become the taxonomy: a lost connection or a deadlock is retried
        # with backoff instead of sending the batch record by record to the dead-letter topic.
        async with translated_errors():
            async with self._connection() as conn:
                phases.done("acquire")
                async with store.join_transaction(conn):
                    if predictions:
                        await store.insert_predictions(conn, [
                            (pid, version, variant, p.model, utc(p.served_at), p.SerializeToString())
                            for (pid, version, variant), p in predictions.items()])
                        self.metrics.predictions.inc(len(predictions))
                    fresh = await self._upsert_labels(conn, labels) if labels else {}
                    phases.done("store")
                    held = sorted(({pid for pid, _, _ in predictions} | set(labels)).difference(fresh))
                    outgoing = await self._join(conn, fresh, held, now, now_ts)
                    phases.done("join")
                    if outgoing:
                        await self._producer.send_batch(LABELED, outgoing)
                    phases.done("emit")
                phases.done("commit")
        self.metrics.batch_seconds.observe(time.perf_counter() - started)

    async def _upsert_labels(self, conn: asyncpg.Connection,
                             labels: dict[str, list[predictions_pb2.FeedbackReceived]]
                             ) -> dict[str, tuple[predictions_pb2.FeedbackReceived, int, bytes]]:
        """Apply each prediction's labels in arrival order (``domain.apply_label``): the same
        value is a no-op, a different value with a later event time wins (revision + 1, the
        change recorded in label_changes), an older one is stale; each outcome is counted.
        One statement inserts the labels not held yet (folded, when a batch has several for
        one prediction); those already held (duplicates, corrections: rare) are then locked,
        and their labels applied to what is held.

        Returns the labels that were not held before (prediction id: the label, its revision
        and its serialized form): no joined or rejected record can exist for them yet."""
        outcomes: collections.Counter[str] = collections.Counter()
        changes: list[store.LabelChange] = []
        rows = []
        fresh: dict[str, tuple[predictions_pb2.FeedbackReceived, int, bytes]] = {}
        several: dict[str, tuple[collections.Counter[str], list[store.LabelChange]]] = {}
        for pid, arrived in labels.items():
            first = arrived[0]
            if len(arrived) == 1:  # the common case, without the fold
                payload = first.SerializeToString()
                rows.append((pid, utc(first.event_time), utc(first.received_at), label_value(first.label),
                             payload, 0))
                fresh[pid] = (first, 0, payload)
                continue
            counted: collections.Counter[str] = collections.Counter()
            changed: list[store.LabelChange] = []
            state = _apply(pid, None, arrived, counted, changed)
            assert state.feedback is not None
            several[pid] = (counted, changed)
            payload = state.feedback.SerializeToString()
            fresh[pid] = (state.feedback, state.revision, payload)
            rows.append((pid, state.event_time, utc(first.received_at), state.value, payload, state.revision))
        new = await store.insert_new_labels(conn, rows)
        outcomes["new"] += len(new) - len(new.intersection(several))
        for pid in new.intersection(several):
            counted, changed = several[pid]
            outcomes.update(counted)
            changes.extend(changed)
        if len(new) < len(labels):
            held = await store.lock_labels(conn, [pid for pid in labels if pid not in new])
            updates = []
            for pid, row in held.items():
                start = domain.LabelState(row.event_time, row.label_value, row.revision)
                state = _apply(pid, start, labels[pid], outcomes, changes)
                if state.feedback is not None:  # changed, or its time refreshed by a later duplicate
                    updates.append((pid, state.event_time, state.value, state.feedback.SerializeToString(),
                                    state.revision))
            if updates:
                await store.replace_labels(conn, updates, [])
        if changes:
            await store.replace_labels(conn, [], changes)
        for outcome, count in outcomes.items():
            if count:
                self.metrics.labels.labels(outcome).inc(count)
        if len(new) < len(fresh):
            fresh = {pid: fresh[pid] for pid in new}
        return fresh

    async def _join(self, conn: asyncpg.Connection,
                    fresh: dict[str, tuple[predictions_pb2.FeedbackReceived, int, bytes]],
                    held: list[str], now: datetime, now_ts: Timestamp) -> list[Outgoing]:
        """Join the batch's ids: ``fresh`` labels (just inserted, in hand) with their predictions,
        and the other ids through the stored labels and joined records."""
        if not fresh and not held:
            return []
        outgoing: list[Outgoing] = []
        joined_rows: list[store.JoinedRow] = []
        replaced_rows: list[store.JoinedRow] = []
        rejected_rows: list[store.RejectedRow] = []
        joins: collections.Counter[tuple[str, str]] = collections.Counter()
        from_prediction = predictions_pb2.PredictionLogged.FromString
        from_feedback = predictions_pb2.FeedbackReceived.FromString
        # The record is serialized from the stored payloads (domain.LabeledBytes), not built
        # as a message: it is stored and published as those bytes.
        labeled = domain.LabeledBytes(now_ts.SerializeToString())
        for pid, version, variant, model, served_at, prediction_bytes, feedback_bytes, revision in (
                await store.pairs_to_emit(conn, sorted(fresh), held)):
            prediction = from_prediction(prediction_bytes)
            if feedback_bytes is None:
                feedback, revision, feedback_bytes = fresh[pid]
                rows = joined_rows
            else:
                feedback = from_feedback(feedback_bytes)
                rows = replaced_rows
            try:
                scored = domain.score(prediction, feedback)
            except InvalidArgument as exc:
                rejected_rows.append((pid, version, variant, str(exc)))
                continue
            delay = domain.label_delay_ms(prediction, feedback)
            record = labeled.record(prediction_bytes, feedback_bytes, delay, scored.correct, scored.error, revision)
            event_id = domain.labeled_event_id(pid, version, variant, revision)
            rows.append((pid, version, variant, model, revision, event_id, scored.task, served_at, now,
                         delay, scored.correct, scored.predicted_class, scored.label_class, scored.log_loss,
                         scored.error, record))
            outgoing.append(Outgoing(model, domain.SerializedLabeled(record),  # type: ignore[arg-type]
                                     subject=pid, event_id=event_id))
            joins[(model, str(variant))] += 1
        if joined_rows:
            await store.insert_joined(conn, joined_rows)
        if replaced_rows:
            await store.store_joined(conn, replaced_rows)
        if rejected_rows:
            await store.store_rejected(conn, rejected_rows)
            self.metrics.rejected.inc(len(rejected_rows))
            for pid, version, variant, reason in rejected_rows:
                log.warning("label of %s (version %s, variant %s) rejected: %s", pid, version, variant, reason)
        for (model, variant), count in joins.items():
            self.metrics.joins.labels(model, variant).inc(count)
        return outgoing

    async def expire(self, window: timedelta) -> dict[str, int]:
        """Mark unmatched predictions and labels older than ``window`` (by arrival) expired, and count them.

        A label is matched when a joined record holds it; the sweep marks the matched ones
        older than the window too, so that they leave the sweep's index (the join does not
        write the label again). It holds the join lock exclusively: the join batches in
        flight commit first, and none starts until the sweep is done, so an item is never
        both joined and counted as expired."""
        cutoff = self._clock() - window
        async with self._pool().acquire() as conn, conn.transaction():
            await store.exclusive_join_lock(conn)
            predictions = await conn.fetchval(
                "WITH gone AS (UPDATE predictions p SET expired = true WHERE NOT p.expired AND p.received_at < $1"
                " AND NOT EXISTS (SELECT 1 FROM labels l WHERE l.prediction_id = p.prediction_id)"
                " RETURNING 1) SELECT count(*) FROM gone", cutoff)
            await conn.execute(
                "UPDATE labels l SET matched = true WHERE NOT matched AND NOT expired AND received_at < $1"
                " AND EXISTS (SELECT 1 FROM joined j WHERE j.prediction_id = l.prediction_id)", cutoff)
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


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def utc(timestamp: Timestamp) -> datetime:
    """``timestamp.ToDatetime(tzinfo=UTC)`` (microseconds, nanoseconds dropped), without its
    time-zone conversion: several per record."""
    return _EPOCH + timedelta(seconds=timestamp.seconds, microseconds=timestamp.nanos // 1000)


def _apply(pid: str, state: domain.LabelState | None, arrived: list[predictions_pb2.FeedbackReceived],
           outcomes: collections.Counter[str], changes: list[store.LabelChange]) -> domain.LabelState:
    """Apply a prediction's labels in arrival order to ``state``; count the outcomes, collect the changes."""
    found: list[domain.Change] = []
    for feedback in arrived:
        state, outcome = domain.apply_label(state, utc(feedback.event_time), label_value(feedback.label),
                                            feedback, found)
        outcomes[outcome] += 1
    changes.extend((pid, *change) for change in found)
    assert state is not None
    return state


__all__ = ["Joiner", "JoinMetrics"]
