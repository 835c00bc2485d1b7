"""The PostgreSQL unit of work: one pooled connection, one transaction, every repository.

Driver errors raised anywhere inside are turned into the error taxonomy here, so
handlers and edges never see asyncpg exceptions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from loopline_core.db.pool import translated_errors

from loopline_registry.adapters.postgres import catalog, records
from loopline_registry.service.ports import UnitOfWork


class PostgresUnitOfWork:
    def __init__(self, conn: asyncpg.Connection, transaction: Any | None) -> None:
        self.conn = conn
        self._transaction = transaction
        self.committed = False
        self.wrote_events = False
        self.models = catalog.Models(self)
        self.versions = catalog.Versions(self)
        self.aliases = catalog.Aliases(self)
        self.deployments = catalog.Deployments(self)
        self.artifacts = catalog.Artifacts(self)
        self.datasets = records.Datasets(self)
        self.runs = records.Runs(self)
        self.audit = records.Audit(self)
        self.outbox = records.Outbox(self)
        self.idempotency = records.Idempotency(self)
        self.api_keys = records.ApiKeys(self)

    async def commit(self) -> None:
        if self._transaction is None:
            raise RuntimeError("a read-only unit of work cannot commit")
        await self._transaction.commit()
        self.committed = True


def postgres_uow_factory(pool: Callable[[], asyncpg.Pool],
                         on_events: Callable[[], None] | None = None) -> Callable[..., Any]:
    """``pool`` is called per unit of work: the pool exists only once the component started."""

    @asynccontextmanager
    async def unit_of_work(readonly: bool = False) -> AsyncIterator[UnitOfWork]:
        async with translated_errors(), pool().acquire() as conn:
            if readonly:
                yield PostgresUnitOfWork(conn, None)
                return
            transaction = conn.transaction()
            await transaction.start()
            uow = PostgresUnitOfWork(conn, transaction)
            try:
                yield uow
            finally:
                if not uow.committed:
                    await transaction.rollback()
        if uow.committed and uow.wrote_events and on_events:
            on_events()

    return unit_of_work
