"""The outbox relay: publishes committed events in commit order, then marks them sent.

A record is marked published only after the broker acknowledged it, in the same
claim (transaction) that read it. A crash before that leaves it pending, and the
next relay sends it again with the event id stored in the outbox row, so
consumers see at most a duplicate with the same ce_id, never a loss or a new id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from loopline_core.errors import Unavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutboxRecord:
    seq: int
    event_id: str
    topic: str
    key: str
    type_name: str
    payload: bytes
    subject: str
    traceparent: str
    #: When the change was committed: the event's ce_time, the same on every re-send.
    created_at: datetime | None = None


class Claim(Protocol):
    records: list[OutboxRecord]

    async def mark_published(self, seqs: Sequence[int]) -> None: ...


class OutboxSource(Protocol):
    def claim(self, limit: int) -> AbstractAsyncContextManager[Claim]: ...


class Publisher(Protocol):
    async def publish(self, records: Sequence[OutboxRecord]) -> None: ...


class OutboxRelay:
    def __init__(self, source: OutboxSource, publisher: Publisher, *, batch_size: int = 100,
                 poll_s: float = 0.5, max_backoff_s: float = 5.0) -> None:
        self._source = source
        self._publisher = publisher
        self._batch_size = batch_size
        self._poll_s = poll_s
        self._max_backoff_s = max_backoff_s
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Called after a commit that wrote events, so they go out without waiting for the poll."""
        self._wake.set()

    async def relay_once(self) -> int:
        async with self._source.claim(self._batch_size) as claim:
            if claim.records:
                await self._publisher.publish(claim.records)
                await claim.mark_published([r.seq for r in claim.records])
            return len(claim.records)

    async def run(self) -> None:
        backoff = self._poll_s
        while True:
            try:
                sent = await self.relay_once()
            except Unavailable as exc:
                log.warning("outbox relay: %s; retrying in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff_s)
                continue
            backoff = self._poll_s
            if sent == self._batch_size:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_s)
            self._wake.clear()
