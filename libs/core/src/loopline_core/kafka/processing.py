"""One record, start to finish: decode, handle, retry, or dead-letter (see ``consumer``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from aiokafka import ConsumerRecord
from opentelemetry.trace import Span, Status, StatusCode

from loopline_core.errors import LooplineError
from loopline_core.kafka.cloudevents import EventTypes, decode
from loopline_core.kafka.dead_letter import Failure, dead_letter_headers, error_type
from loopline_core.kafka.handlers import Delivery, Handler
from loopline_core.kafka.producer import EventProducer
from loopline_core.kafka.retry import Backoff, is_retryable
from loopline_core.kafka.topics import dead_letter_topic
from loopline_core.kafka.tracing import process_span

if TYPE_CHECKING:
    from loopline_core.kafka.consumer import ConsumerStats

log = logging.getLogger(__name__)


@dataclass
class RecordProcessor:
    group_id: str
    types: EventTypes
    handler: Handler
    dead_letters: EventProducer
    backoff: Backoff
    max_retries: int
    stats: ConsumerStats
    stopping: asyncio.Event
    clock: Callable[[], datetime]

    async def process(self, record: ConsumerRecord[bytes, bytes]) -> bool:
        """True once the record is handled or dead-lettered; False when a stop cut
        it short (it must stay uncommitted, to be redelivered)."""
        headers = list(record.headers or ())
        with process_span(record.topic, headers, group_id=self.group_id, partition=record.partition,
                          offset=record.offset) as span:
            attempts = 0
            while True:
                attempts += 1
                try:
                    await self._handle(record, headers, span)
                except Exception as exc:  # noqa: BLE001 - every failure is retried or dead-lettered
                    span.record_exception(exc)
                    if not (is_retryable(exc) and attempts <= self.max_retries):
                        span.set_status(Status(StatusCode.ERROR, f"dead-lettered: {error_type(exc)}"))
                        return await self._dead_letter(record, headers, exc, attempts)
                    delay = self.backoff.delay(attempts)
                    log.warning("%s[%d]@%d: retryable failure (%s), retry %d/%d in %.2fs", record.topic,
                                record.partition, record.offset, exc, attempts, self.max_retries, delay)
                    self.stats.retried += 1
                    if not await self._pause(delay):
                        return False
                else:
                    self.stats.handled += 1
                    return True

    async def _handle(self, record: ConsumerRecord[bytes, bytes], headers: list[tuple[str, bytes]],
                      span: Span) -> None:
        event = decode(record.value, headers, self.types)
        span.set_attribute("messaging.message.id", event.id)
        key = record.key.decode("utf-8", "replace") if record.key is not None else None
        await self.handler(Delivery(record.topic, record.partition, record.offset, key, event))

    async def _pause(self, seconds: float) -> bool:
        """Wait, unless a stop comes first; True when it is still worth going on."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)
        return not self.stopping.is_set()

    async def _dead_letter(self, record: ConsumerRecord[bytes, bytes], headers: list[tuple[str, bytes]],
                           exc: Exception, attempts: int) -> bool:
        failure = Failure(exc, attempts, self.group_id, self.clock())
        topic = dead_letter_topic(record.topic)
        dlq_headers = dead_letter_headers(headers, topic=record.topic, partition=record.partition,
                                          offset=record.offset, failure=failure)
        log.error("%s[%d]@%d: dead-lettered to %s after %d attempt(s): %s: %s", record.topic, record.partition,
                  record.offset, topic, attempts, error_type(exc), exc)
        tries = 0
        while True:
            try:
                await self.dead_letters.send_record(topic, key=record.key, value=record.value, headers=dlq_headers)
            except LooplineError as send_error:
                if not send_error.retryable:
                    raise
                tries += 1
                log.warning("cannot write %s yet (%s); trying again", topic, send_error)
                if not await self._pause(self.backoff.delay(tries)):
                    return False
            else:
                self.stats.dead_lettered += 1
                return True
