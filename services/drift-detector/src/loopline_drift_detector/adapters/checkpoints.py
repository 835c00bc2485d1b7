"""Where partition state and its outbox are kept: PostgreSQL, or memory for unit tests.

``save`` writes the state of some partitions, each with the next offset it has
applied, and the events that state decided, in one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import asyncpg
from loopline_core.db.pool import translated_errors


@dataclass(frozen=True)
class Checkpoint:
    partition: int
    next_offset: int
    state: bytes


@dataclass(frozen=True)
class OutboxEvent:
    event_id: str
    partition: int
    #: The topic it is published to, its key and subject, "drift" or "retrain", the protobuf bytes.
    target: str
    key: str
    subject: str
    kind: str
    payload: bytes


class CheckpointStore(Protocol):
    async def load(self, group: str, topic: str, partition: int) -> Checkpoint | None: ...
    async def save(self, group: str, topic: str, checkpoints: Sequence[Checkpoint],
                   outbox: Sequence[OutboxEvent] = ()) -> None: ...
    async def pending(self, group: str, topic: str, partition: int) -> list[OutboxEvent]: ...
    async def sent(self, event_ids: Sequence[str]) -> None: ...


class PostgresCheckpoints:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def load(self, group: str, topic: str, partition: int) -> Checkpoint | None:
        async with translated_errors():
            row = await self._pool.fetchrow(
                "SELECT next_offset, state FROM partition_checkpoints"
                " WHERE group_id = $1 AND topic = $2 AND partition = $3", group, topic, partition)
        return None if row is None else Checkpoint(partition, row["next_offset"], bytes(row["state"]))

    async def save(self, group: str, topic: str, checkpoints: Sequence[Checkpoint],
                   outbox: Sequence[OutboxEvent] = ()) -> None:
        async with translated_errors(), self._pool.acquire() as conn, conn.transaction():
            await conn.executemany(
                "INSERT INTO partition_checkpoints (group_id, topic, partition, next_offset, state)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (group_id, topic, partition) DO UPDATE"
                " SET next_offset = EXCLUDED.next_offset, state = EXCLUDED.state, updated_at = now()",
                [(group, topic, c.partition, c.next_offset, c.state) for c in checkpoints])
            await conn.executemany(
                "INSERT INTO outbox (event_id, group_id, topic, partition, target, key, subject, kind, payload)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (event_id) DO NOTHING",
                [(e.event_id, group, topic, e.partition, e.target, e.key, e.subject, e.kind, e.payload)
                 for e in outbox])

    async def pending(self, group: str, topic: str, partition: int) -> list[OutboxEvent]:
        async with translated_errors():
            rows = await self._pool.fetch(
                "SELECT event_id, partition, target, key, subject, kind, payload FROM outbox"
                " WHERE group_id = $1 AND topic = $2 AND partition = $3 ORDER BY seq", group, topic, partition)
        return [OutboxEvent(r["event_id"], r["partition"], r["target"], r["key"], r["subject"], r["kind"],
                            bytes(r["payload"])) for r in rows]

    async def sent(self, event_ids: Sequence[str]) -> None:
        async with translated_errors():
            await self._pool.execute("DELETE FROM outbox WHERE event_id = ANY($1::text[])", list(event_ids))


class InMemoryCheckpoints:
    def __init__(self) -> None:
        self.checkpoints: dict[tuple[str, str, int], Checkpoint] = {}
        self.outbox: dict[str, tuple[str, str, OutboxEvent]] = {}
        self.saves = 0

    async def load(self, group: str, topic: str, partition: int) -> Checkpoint | None:
        return self.checkpoints.get((group, topic, partition))

    async def save(self, group: str, topic: str, checkpoints: Sequence[Checkpoint],
                   outbox: Sequence[OutboxEvent] = ()) -> None:
        self.saves += 1
        for c in checkpoints:
            self.checkpoints[(group, topic, c.partition)] = c
        for e in outbox:
            self.outbox.setdefault(e.event_id, (group, topic, e))

    async def pending(self, group: str, topic: str, partition: int) -> list[OutboxEvent]:
        return [e for g, t, e in self.outbox.values() if (g, t, e.partition) == (group, topic, partition)]

    async def sent(self, event_ids: Sequence[str]) -> None:
        for event_id in event_ids:
            self.outbox.pop(event_id, None)
