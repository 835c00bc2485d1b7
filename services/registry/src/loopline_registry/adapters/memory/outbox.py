"""The in-memory outbox as a relay source, and an in-memory publisher for tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from loopline_core.errors import Unavailable

from loopline_registry.adapters.memory.state import MemoryState
from loopline_registry.service.relay import OutboxRecord


@dataclass
class _Claim:
    state: MemoryState
    records: list[OutboxRecord]

    async def mark_published(self, seqs: Sequence[int]) -> None:
        done = set(seqs)
        self.state.tables.outbox = [(r, sent or r.seq in done) for r, sent in self.state.tables.outbox]


class MemoryOutbox:
    def __init__(self, state: MemoryState) -> None:
        self._state = state

    @asynccontextmanager
    async def claim(self, limit: int) -> AsyncIterator[_Claim]:
        async with self._state.lock:
            pending = [r for r, sent in self._state.tables.outbox if not sent][:limit]
            yield _Claim(self._state, pending)

    def pending(self) -> list[OutboxRecord]:
        return [r for r, sent in self._state.tables.outbox if not sent]


@dataclass
class MemoryPublisher:
    """Collects what it is asked to publish; ``fail_next`` simulates a broker outage."""

    published: list[OutboxRecord] = field(default_factory=list)
    fail_next: int = 0

    async def publish(self, records: Sequence[OutboxRecord]) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise Unavailable("broker down (simulated)")
        self.published.extend(records)
