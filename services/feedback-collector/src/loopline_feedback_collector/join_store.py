"""The join state and the feedback store in PostgreSQL: the statements of one join batch.

Every statement takes the whole batch as arrays (``unnest``), so a batch costs a fixed
handful of round trips whatever its size: begin and take the join lock (shared); insert predictions;
insert labels (the new ones come back); for labels already held, lock and compare them
(rare: duplicates and corrections); select the pairs to emit; write the joined records.
A label is not written again when it joins (``labels.matched`` is set by the expiry sweep,
for labels past the join window). The caller holds the transaction.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

import asyncpg

PredictionRow = tuple[str, int, int, str, datetime, bytes]  # id, version, variant, model, served_at, payload
LabelRow = tuple[str, datetime, datetime, str, bytes, int]  # id, event_time, received_at, label_value, payload, rev
LabelUpdate = tuple[str, datetime, str, bytes, int]  # id, event_time, label_value, payload, revision
LabelChange = tuple[str, int, str, str, datetime, datetime]  # id, revision, old, new, old time, new time
JoinedRow = tuple[str, int, int, str, int, str, str, datetime, datetime, int, bool, int | None, int | None,
                  float | None, float, bytes]
RejectedRow = tuple[str, int, int, str]

_JOINED_COLUMNS = ("prediction_id", "version", "variant", "model", "revision", "event_id", "task", "served_at",
                   "joined_at", "label_delay_ms", "correct", "predicted_class", "label_class", "log_loss", "error",
                   "payload")
_JOINED_TYPES = ("text", "bigint", "int", "text", "int", "text", "text", "timestamptz", "timestamptz", "bigint",
                 "boolean", "int", "int", "double precision", "double precision", "bytea")


@dataclass(frozen=True)
class HeldLabel:
    event_time: datetime
    label_value: str
    revision: int


class Pair(NamedTuple):
    """A prediction and its label whose joined record is missing or older than the label
    (``feedback`` None: the label is in the caller's hand; see ``pairs_to_emit``)."""

    prediction_id: str
    version: int
    variant: int
    model: str
    served_at: datetime
    prediction: bytes
    feedback: bytes | None
    revision: int


def _columns(rows: Sequence[tuple[object, ...]], width: int) -> list[list[object]]:
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


async def insert_predictions(conn: asyncpg.Connection, rows: Sequence[PredictionRow]) -> None:
    await conn.execute(
        "INSERT INTO predictions (prediction_id, version, variant, model, served_at, payload)"
        " SELECT * FROM unnest($1::text[], $2::bigint[], $3::int[], $4::text[], $5::timestamptz[], $6::bytea[])"
        " ON CONFLICT DO NOTHING", *_columns(rows, 6))


async def insert_new_labels(conn: asyncpg.Connection, rows: Sequence[LabelRow]) -> set[str]:
    """Insert the labels not held yet; return their prediction ids."""
    inserted = await conn.fetch(
        "INSERT INTO labels (prediction_id, event_time, received_at, label_value, payload, revision)"
        " SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[], $4::text[], $5::bytea[], $6::int[])"
        " ON CONFLICT DO NOTHING RETURNING prediction_id", *_columns(rows, 6))
    return {row[0] for row in inserted}


async def lock_labels(conn: asyncpg.Connection, ids: Sequence[str]) -> dict[str, HeldLabel]:
    rows = await conn.fetch(
        "SELECT prediction_id, event_time, label_value, revision FROM labels"
        " WHERE prediction_id = ANY($1::text[]) FOR UPDATE", list(ids))
    return {row[0]: HeldLabel(row[1], row[2], row[3]) for row in rows}


async def replace_labels(conn: asyncpg.Connection, updates: Sequence[LabelUpdate],
                         changes: Sequence[LabelChange]) -> None:
    """Update held labels (a change revives an expired one; a refreshed event time does not)
    and record changes."""
    if updates:
        await conn.executemany(
            "UPDATE labels SET event_time = $2, label_value = $3, payload = $4, revision = $5,"
            " expired = (expired AND revision = $5) WHERE prediction_id = $1", updates)
    if changes:
        await conn.executemany(
            "INSERT INTO label_changes (prediction_id, revision, old_value, new_value, old_event_time,"
            " new_event_time) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING", changes)


#: Join batches hold it shared, the expiry sweep exclusively. Advisory locks are per
#: database: the key names the collector's schema, so collectors of other schemas (tests,
#: benchmarks, other deployments) do not wait for each other.
_JOIN_LOCK = "hashtext('loopline.feedback.join'), hashtext(current_schema())"


@contextlib.asynccontextmanager
async def join_transaction(conn: asyncpg.Connection) -> AsyncIterator[None]:
    """A transaction holding the join lock shared: BEGIN and the lock in one round trip
    (a simple query), COMMIT at the end, ROLLBACK on any error (and the pool's reset
    rolls back whatever a failed ROLLBACK left)."""
    await conn.execute(f"BEGIN; SELECT pg_advisory_xact_lock_shared({_JOIN_LOCK})")
    try:
        yield
    except BaseException:
        if not conn.is_closed():
            with contextlib.suppress(Exception):
                await conn.execute("ROLLBACK")
        raise
    await conn.execute("COMMIT")


async def exclusive_join_lock(conn: asyncpg.Connection) -> None:
    await conn.execute(f"SELECT pg_advisory_xact_lock({_JOIN_LOCK})")


_PAIRS = (
    # Labels inserted by this batch (in hand: the label comes back NULL): only their
    # predictions, since no joined or rejected record can exist for a label not held before.
    "SELECT p.prediction_id, p.version, p.variant, p.model, p.served_at, p.payload, NULL::bytea, 0"
    "  FROM predictions p WHERE p.prediction_id = ANY($1::text[]) AND NOT p.expired"
    " UNION ALL"
    # The other ids: driven by the ids (index probes), never by the tables: a plan that scans
    # labels or joined costs a batch time in proportion to the whole join window.
    " SELECT p.prediction_id, p.version, p.variant, p.model, p.served_at, p.payload, l.payload, l.revision"
    "  FROM unnest($2::text[]) AS batch (prediction_id)"
    "  CROSS JOIN LATERAL (SELECT * FROM labels WHERE prediction_id = batch.prediction_id) l"
    "  CROSS JOIN LATERAL (SELECT * FROM predictions WHERE prediction_id = batch.prediction_id) p"
    "  LEFT JOIN LATERAL (SELECT revision FROM joined WHERE prediction_id = p.prediction_id"
    "       AND version = p.version AND variant = p.variant) j ON true"
    "  LEFT JOIN LATERAL (SELECT true AS found FROM rejected WHERE prediction_id = p.prediction_id"
    "       AND version = p.version AND variant = p.variant) r ON true"
    " WHERE (j.revision IS NULL OR j.revision < l.revision) AND NOT p.expired AND NOT l.expired"
    "   AND (j.revision IS NOT NULL OR r.found IS NULL)"
)


async def pairs_to_emit(conn: asyncpg.Connection, fresh: Sequence[str], held: Sequence[str]) -> list[Pair]:
    """The predictions of the ``fresh`` ids (labels this transaction inserted; label NULL,
    revision 0), and every prediction ⋈ stored label of the ``held`` ids whose joined record
    is missing or older than the label."""
    # asyncpg's records unpack like ``Pair`` (same columns, same order); not copied into one.
    return await conn.fetch(_PAIRS, list(fresh), list(held))  # type: ignore[no-any-return]


_VALUES = " SELECT * FROM unnest(" + ", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(_JOINED_TYPES)) + ")"
_INSERT_JOINED = f"INSERT INTO joined ({', '.join(_JOINED_COLUMNS)})" + _VALUES
_STORE_JOINED = (
    _INSERT_JOINED +
    " ON CONFLICT (prediction_id, version, variant) DO UPDATE SET revision = excluded.revision,"
    " event_id = excluded.event_id, joined_at = excluded.joined_at,"
    " label_delay_ms = excluded.label_delay_ms, correct = excluded.correct,"
    " predicted_class = excluded.predicted_class, label_class = excluded.label_class,"
    " log_loss = excluded.log_loss, error = excluded.error, payload = excluded.payload"
    " WHERE joined.revision < excluded.revision"
)


async def insert_joined(conn: asyncpg.Connection, rows: Sequence[JoinedRow]) -> None:
    """Write the first joined records of labels this transaction inserted: a plain insert
    (no conflict is possible; ON CONFLICT's speculative insertion costs PostgreSQL more)."""
    await conn.execute(_INSERT_JOINED, *_columns(rows, len(_JOINED_COLUMNS)))


async def store_joined(conn: asyncpg.Connection, rows: Sequence[JoinedRow]) -> None:
    """Write joined records of held labels (a newer revision replaces an older one)."""
    await conn.execute(_STORE_JOINED, *_columns(rows, len(_JOINED_COLUMNS)))


async def store_rejected(conn: asyncpg.Connection, rows: Sequence[RejectedRow]) -> None:
    await conn.execute(
        "INSERT INTO rejected (prediction_id, version, variant, reason)"
        " SELECT * FROM unnest($1::text[], $2::bigint[], $3::int[], $4::text[]) ON CONFLICT DO NOTHING",
        *_columns(rows, 4))
