"""One record, or one partition batch, start to finish: decode, handle, retry, or
dead-letter (see ``consumer``)."""

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
from loopline_core.kafka.handlers import BatchHandler, Delivery, Handler
from loopline_core.kafka.producer import EventProducer
from loopline_core.kafka.retry import Backoff, is_retryable
from loopline_core.kafka.topics import dead_letter_topic
from loopline_core.kafka.tracing import process_batch_span, process_span

if TYPE_CHECKING:
    from loopline_core.kafka.consumer import ConsumerStats

log = logging.getLogger(__name__)
Headers = tuple[tuple[str, bytes], ...]


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
        headers = tuple(record.headers or ())  # one copy, shared with the Delivery
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

    async def process_batch(self, records: list[ConsumerRecord[bytes, bytes]], batch_handler: BatchHandler) -> int:
        """Handle one partition's polled records together; returns how many of them,
        from the start, are done (handled or dead-lettered).

        Undecodable records are dead-lettered first. A retryable failure retries the
        whole batch; any other failure (or too many retries) falls back to one record
        at a time through ``process``, so that only the poison record is dead-lettered.
        """
        deliveries: list[Delivery] = []
        for record in records:
            headers = tuple(record.headers or ())  # one copy, shared with the Delivery
            try:
                deliveries.append(self._delivery(record, headers))
            except Exception as exc:  # noqa: BLE001 - an undecodable record is dead-lettered
                if not await self._dead_letter(record, headers, exc, 1):
                    return 0
        if not deliveries:
            return len(records)
        first = deliveries[0]
        with process_batch_span(first.topic, [d.headers for d in deliveries], group_id=self.group_id,
                                partition=first.partition, first_offset=first.offset,
                                last_offset=deliveries[-1].offset) as span:
            attempts = 0
            while True:
                attempts += 1
                try:
                    await batch_handler(deliveries)
                except Exception as exc:  # noqa: BLE001 - retried, or isolated record by record
                    span.record_exception(exc)
                    if not (is_retryable(exc) and attempts <= self.max_retries):
                        span.set_status(Status(StatusCode.ERROR, f"isolating: {error_type(exc)}"))
                        log.warning("%s[%d]@%d..%d: batch of %d failed (%s: %s); handling it one record at a time",
                                    first.topic, first.partition, first.offset, deliveries[-1].offset,
                                    len(deliveries), error_type(exc), exc)
                        break
                    delay = self.backoff.delay(attempts)
                    log.warning("%s[%d]@%d..%d: retryable batch failure (%s), retry %d/%d in %.2fs", first.topic,
                                first.partition, first.offset, deliveries[-1].offset, exc, attempts,
                                self.max_retries, delay)
                    self.stats.retried += 1
                    if not await self._pause(delay):
                        return 0
                else:
                    self.stats.handled += len(deliveries)
                    return len(records)
        decoded = {d.offset for d in deliveries}
        for done, record in enumerate(records):
            if record.offset in decoded and not await self.process(record):
                return done
        return len(records)

    def _delivery(self, record: ConsumerRecord[bytes, bytes], headers: Headers) -> Delivery:
        event = decode(record.value, headers, self.types)
        key = record.key.decode("utf-8", "replace") if record.key is not None else None
        # As in ``cloudevents.decode``: the frozen dataclass filled directly, the same object
        # as ``Delivery(...)`` gives at a fraction of the cost (one per record).
        delivery = _new_object(Delivery)
        fields = delivery.__dict__
        fields["topic"] = record.topic
        fields["partition"] = record.partition
        fields["offset"] = record.offset
        fields["key"] = key
        fields["event"] = event
        fields["headers"] = headers
        return delivery

    async def _handle(self, record: ConsumerRecord[bytes, bytes], headers: Headers,
                      span: Span) -> None:
        delivery = self._delivery(record, headers)
        span.set_attribute("messaging.message.id", delivery.event.id)
        await self.handler(delivery)

    async def _pause(self, seconds: float) -> bool:
        """Wait, unless a stop comes first; True when it is still worth going on."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)
        return not self.stopping.is_set()

    async def _dead_letter(self, record: ConsumerRecord[bytes, bytes], headers: Headers,
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


_new_object = object.__new__
