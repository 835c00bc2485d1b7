"""In-memory tables and the unit of work over them (tests, benchmarks, `backend=memory`).

A writing unit of work holds one lock for its whole life and works on shallow
copies of the tables, swapped in on commit: entities are frozen, so this gives
the same all-or-nothing behaviour as a database transaction.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, fields
from typing import Any

from loopline_registry.adapters.memory import catalog, records
from loopline_registry.service.ports import UnitOfWork


@dataclass
class Tables:
    models: dict[str, Any] = field(default_factory=dict)
    last_version: dict[str, int] = field(default_factory=dict)
    versions: dict[tuple[str, int], Any] = field(default_factory=dict)
    aliases: dict[tuple[str, str], int] = field(default_factory=dict)
    alias_history: list[Any] = field(default_factory=list)
    deployments: dict[str, Any] = field(default_factory=dict)
    deployment_history: list[Any] = field(default_factory=list)
    deployment_traces: dict[tuple[str, int], str] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)
    datasets: dict[str, Any] = field(default_factory=dict)
    dataset_last: dict[str, int] = field(default_factory=dict)
    dataset_versions: dict[tuple[str, int], Any] = field(default_factory=dict)
    runs: dict[str, Any] = field(default_factory=dict)
    audit: list[Any] = field(default_factory=list)
    outbox: list[Any] = field(default_factory=list)
    idempotency: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    api_keys: dict[str, Any] = field(default_factory=dict)

    def copy(self) -> Tables:
        return Tables(**{f.name: copy.copy(getattr(self, f.name)) for f in fields(self)})


@dataclass
class MemoryState:
    tables: Tables = field(default_factory=Tables)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    next_seq: int = 1


class MemoryUnitOfWork:
    def __init__(self, state: MemoryState, tables: Tables) -> None:
        self.state = state
        self.tables = tables
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
        self.state.tables = self.tables
        self.committed = True


def memory_uow_factory(state: MemoryState, on_events: Callable[[], None] | None = None) -> Callable[
        ..., Any]:
    @asynccontextmanager
    async def unit_of_work(readonly: bool = False) -> AsyncIterator[UnitOfWork]:
        if readonly:
            yield MemoryUnitOfWork(state, state.tables)
            return
        async with state.lock:
            uow = MemoryUnitOfWork(state, state.tables.copy())
            yield uow
        if uow.committed and uow.wrote_events and on_events:
            on_events()

    return unit_of_work
