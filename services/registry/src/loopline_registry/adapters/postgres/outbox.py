"""The PostgreSQL outbox as a relay source.

One relay publishes at a time (a transaction-scoped advisory lock), so events
leave in commit order even with several registry replicas; the claimed rows are
marked in the same transaction that read them, after the broker acknowledged.
Published rows are purged after a week.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg
from loopline_core.db.pool import translated_errors

from loopline_registry.service.relay import OutboxRecord

_PURGE_EVERY = 1000


@dataclass
class _Claim:
    conn: asyncpg.Connection
    records: list[OutboxRecord]

    async def mark_published(self, seqs: Sequence[int]) -> None:
        await self.conn.execute("UPDATE outbox SET published_at = now() WHERE seq = ANY($1::bigint[])", list(seqs))


class PostgresOutbox:
    def __init__(self, pool: Callable[[], asyncpg.Pool]) -> None:
        self._pool = pool
        self._claims = 0

    @asynccontextmanager
    async def claim(self, limit: int) -> AsyncIterator[_Claim]:
        async with translated_errors(), self._pool().acquire() as conn, conn.transaction():
            self._claims += 1
            if self._claims % _PURGE_EVERY == 0:
                await conn.execute("DELETE FROM outbox WHERE published_at < now() - interval '7 days'")
            mine = await conn.fetchval("SELECT pg_try_advisory_xact_lock(hashtext(current_schema() || '.outbox'))")
            rows = [] if not mine else await conn.fetch(
                "SELECT seq, event_id, topic, key, type, payload, subject, traceparent, created_at FROM outbox"
                " WHERE published_at IS NULL ORDER BY seq LIMIT $1", limit)
            yield _Claim(conn, [OutboxRecord(r["seq"], r["event_id"], r["topic"], r["key"], r["type"],
                                             bytes(r["payload"]), r["subject"], r["traceparent"], r["created_at"])
                                             for r in rows])
