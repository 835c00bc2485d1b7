"""The inbox in PostgreSQL (asyncpg): ``<schema>.inbox``, created by core's migrations.

``claim`` yields a connection inside an open transaction whose first statement
inserted the inbox row, so the handler's writes on that connection commit or roll
back together with the mark (guarantees in ``loopline_core.kafka.inbox``). A
service with its own unit of work calls ``claim_in`` inside its transaction instead.
Driver errors raised in the block reach the consumer as the taxonomy: a lost
connection, a deadlock or a serialization failure is ``Unavailable`` and retried.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg

from loopline_core.db.pool import check_schema_name, translated_errors
from loopline_core.errors import Unavailable


def inbox_table(schema: str | None = None) -> str:
    """Unqualified, the table is found through the pool's search_path (its schema)."""
    return f'"{check_schema_name(schema)}".inbox' if schema else "inbox"


async def claim_in(conn: asyncpg.Connection, consumer: str, event_id: str, *, table: str = "inbox") -> bool:
    """Mark the event processed inside the caller's transaction; False if it already was.

    A concurrent claim of the same event blocks on the row until this transaction
    ends, then sees the mark (or, after a rollback, claims it).
    """
    if not conn.is_in_transaction():
        raise RuntimeError("claim_in needs an open transaction: the mark must commit with the effects")
    inserted = await conn.fetchval(
        f"INSERT INTO {table} (consumer, event_id) VALUES ($1, $2) "
        "ON CONFLICT (consumer, event_id) DO NOTHING RETURNING true",
        consumer, event_id,
    )
    return bool(inserted)


class PostgresInbox:
    def __init__(self, pool: asyncpg.Pool, *, schema: str | None = None) -> None:
        self._pool = pool
        self._table = inbox_table(schema)

    @contextlib.asynccontextmanager
    async def claim(self, consumer: str, event_id: str) -> AsyncIterator[asyncpg.Connection | None]:
        async with translated_errors():
            try:
                async with self._pool.acquire() as conn, conn.transaction():
                    if not await claim_in(conn, consumer, event_id, table=self._table):
                        yield None
                        return
                    yield conn
            except asyncpg.TransactionRollbackError as exc:
                # Serialization failures and deadlocks pass when tried again.
                raise Unavailable(f"inbox transaction rolled back: {exc}") from exc

    async def seen(self, consumer: str, event_id: str) -> bool:
        async with translated_errors():
            found = await self._pool.fetchval(
                f"SELECT true FROM {self._table} WHERE consumer = $1 AND event_id = $2", consumer, event_id)
        return bool(found)
