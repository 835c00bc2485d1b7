"""The prediction log: every served prediction becomes PredictionLogged, off the request path.

The request path only appends a reference to the request and response (no copy,
no encoding). A background loop turns them into events and sends them in
batches. The buffer is bounded in events and in tensor bytes (requests and answers):
when Kafka is down it fills, further predictions are dropped and counted, and the
loop keeps retrying the batch in hand with the same event ids (consumers drop
repeats), so it catches up when Kafka returns. At shutdown it flushes within the
grace period; what Kafka has not acknowledged by then is counted as dropped too
(``abandon``).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Callable, Iterable
from typing import Protocol

from loopline_core.errors import InvalidArgument, LooplineError
from loopline_core.kafka.producer import Outgoing
from loopline_core.kafka.topics import PREDICTIONS

from loopline_serving_gateway.handlers.prediction_events import Served, events_of
from loopline_serving_gateway.handlers.validation import answer_bytes
from loopline_serving_gateway.settings import PredictionLogSettings

log = logging.getLogger(__name__)
#: Entries turned into events between two turns of the event loop (see ``PredictionLog._build``).
SLICE = 16


class BatchSender(Protocol):
    async def send_batch(self, topic: str, items: Iterable[Outgoing]) -> list[str]: ...


class PredictionLog:
    def __init__(self, sender: BatchSender, settings: PredictionLogSettings, *,
                 on_drop: Callable[[int], None] = lambda n: None,
                 on_sent: Callable[[int], None] = lambda n: None,
                 on_omitted: Callable[[int], None] = lambda n: None) -> None:
        self._sender = sender
        self._settings = settings
        self._on_drop = on_drop
        self._on_sent = on_sent
        self._on_omitted = on_omitted
        self._warned_at = -math.inf
        self._entries: deque[Served] = deque()
        self._in_hand: list[Outgoing] = []  # taken from the buffer, not yet acknowledged by Kafka
        self._buffered = 0
        self._buffered_bytes = 0  # tensor data of the requests and answers held
        self.dropped = 0
        self.sent = 0

    @property
    def buffered(self) -> int:
        return self._buffered

    def record(self, entry: Served) -> None:
        entry.data_bytes += answer_bytes(entry.response)  # the request's came with it
        if (self._buffered + entry.rows > self._settings.buffer_events
                or self._buffered_bytes + entry.data_bytes > self._settings.buffer_bytes):
            self.dropped += entry.rows
            self._on_drop(entry.rows)
            return
        self._entries.append(entry)
        self._buffered += entry.rows
        self._buffered_bytes += entry.data_bytes

    async def _build(self) -> list[Outgoing]:
        """The events of the oldest entries (up to ``batch_events``), built ``SLICE`` entries at a
        time with the event loop let through in between: a 100 ms batch of a busy gateway is a few
        milliseconds of encoding, which in one go would hold up every request in flight (their p99).
        Entries leave the buffer only once built, so a cancel at shutdown loses none of them."""
        entries, outgoing, built, rows = self._entries, [], 0, 0
        limit = self._settings.batch_events
        while built < len(entries) and rows < limit:
            entry = entries[built]
            outgoing.extend(events_of(entry, self._settings.max_event_bytes))
            if entry.omitted_tensors:
                self._omitted(entry)
            rows += entry.rows
            built += 1
            if built % SLICE == 0:
                await asyncio.sleep(0)
        for _ in range(built):
            self._buffered_bytes -= entries.popleft().data_bytes
        self._buffered -= rows
        return outgoing

    def _omitted(self, entry: Served) -> None:
        self._on_omitted(entry.omitted_tensors)
        now = asyncio.get_running_loop().time()
        if now - self._warned_at >= 60:  # at most a line a minute, however many
            self._warned_at = now
            log.warning("prediction log: %s v%s: %d tensor(s) of prediction %s logged without their values "
                        "(an event holds at most prediction_log.max_event_bytes=%d); counted in "
                        "gateway_prediction_log_omitted_tensors_total", entry.model, entry.version,
                        entry.omitted_tensors, entry.prediction_id, self._settings.max_event_bytes)

    async def _send(self, batch: list[Outgoing]) -> None:
        # Kept until Kafka acknowledges it: a send cancelled at shutdown is
        # re-sent by flush() with the same event ids instead of being lost.
        self._in_hand = batch
        try:
            await self._delivered(batch)
        except InvalidArgument as exc:
            # An event Kafka can never take (its record limit below max_event_bytes, say): retrying
            # the batch would hold up the log for good. One at a time instead; the ones refused are
            # dropped and counted, the rest sent.
            log.error("prediction log: Kafka refused a batch of %d events (%s); sending them one by one",
                      len(batch), exc)
            for index, event in enumerate(batch):
                self._in_hand = batch[index:]
                try:
                    await self._delivered([event])
                except InvalidArgument as refused:
                    self.dropped += 1
                    self._on_drop(1)
                    log.error("prediction log: event %s dropped, Kafka cannot take it: %s", event.key, refused)
        self._in_hand = []

    async def _delivered(self, events: list[Outgoing]) -> None:
        """Until Kafka acknowledges ``events``, retrying what may pass (no broker, timeouts);
        a refusal of the events themselves (InvalidArgument) is raised."""
        while True:
            try:
                await self._sender.send_batch(PREDICTIONS, events)
            except InvalidArgument:
                raise
            except LooplineError as exc:
                log.warning("prediction log: %d events not sent yet (%s); retrying", len(events), exc)
                await asyncio.sleep(self._settings.retry_backoff_ms / 1000)
                continue
            self.sent += len(events)
            self._on_sent(len(events))
            return

    async def flush(self) -> None:
        if self._in_hand:
            await self._send(self._in_hand)
        while self._entries:
            await self._send(await self._build())

    def abandon(self) -> int:
        """At shutdown, once Kafka has had its grace period: every event not acknowledged
        (still buffered, or in hand and maybe partly written) counts as dropped. Returns how many."""
        lost = len(self._in_hand) + self._buffered
        self._in_hand = []
        self._entries.clear()
        self._buffered = 0
        self._buffered_bytes = 0
        if lost:
            self.dropped += lost
            self._on_drop(lost)
            log.warning("prediction log: %d events not acknowledged by Kafka at shutdown, counted as dropped", lost)
        return lost

    async def run(self) -> None:
        interval = self._settings.flush_interval_ms / 1000
        while True:
            if self._buffered < self._settings.batch_events:
                await asyncio.sleep(interval)
            if self._entries:
                await self._send(await self._build())
