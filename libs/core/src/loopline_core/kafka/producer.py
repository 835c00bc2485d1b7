"""The event producer: idempotent, acks=all, CloudEvents headers, trace context.

``send`` returns once the broker has acknowledged the record on all in-sync
replicas. With idempotence on, the driver's own retries cannot duplicate or
reorder records of a partition; a caller that retries after an ``Unavailable``
should pass the same ``event_id`` (see ``derive_event_id``) so consumers can
deduplicate.

``send_batch`` opens one ``send <topic>`` span for the whole batch and puts its
trace context on every record, then hands the records to the driver one after
another (order kept per key) and waits for all acknowledgements at once: the
cost per record is encoding and appending, not a span or a round trip.

The driver (aiokafka) keeps one produce request in flight per broker, carrying at
most one batch per partition, so the batch size bounds a partition's throughput
to ``MAX_BATCH_BYTES`` per acks=all round trip; 16 KiB (aiokafka's default) held a
model's LabeledPrediction stream to a few thousand records per second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from google.protobuf.message import Message

from loopline_core.errors import Unavailable
from loopline_core.kafka.cloudevents import encode, new_event, source_for
from loopline_core.kafka.driver_errors import translated_kafka_errors
from loopline_core.kafka.partitioner import key_partitioner
from loopline_core.kafka.tracing import send_batch_span, send_span
from loopline_core.settings import KafkaSettings


class ProducerDriver(Protocol):
    """The part of ``AIOKafkaProducer`` used here (the in-memory broker has it too)."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def send(self, topic: str, value: bytes | None = None, key: bytes | None = None,
                   partition: int | None = None, timestamp_ms: int | None = None,
                   headers: Sequence[tuple[str, bytes]] | None = None) -> asyncio.Future[Any]: ...


@dataclass(frozen=True)
class Outgoing:
    """One event of a ``send_batch``."""

    key: str
    message: Message
    subject: str | None = None
    event_id: str | None = None
    #: ce_time: when the event happened. Unset: the moment it is sent. A re-send
    #: (outbox relay, retry) passes the original time along with the original id.
    time: datetime | None = None


log = logging.getLogger(__name__)


async def _abandon(driver: ProducerDriver, timeout: float) -> None:
    """Tear down an aiokafka producer whose flush was given up: fail what its accumulator
    holds, cancel its sender task and close its client. Other drivers have nothing to tear down."""
    accumulator = getattr(driver, "_message_accumulator", None)
    sender = getattr(driver, "_sender", None)
    client = getattr(driver, "client", None)
    if accumulator is not None:
        held = [batch for queue in getattr(accumulator, "_batches", {}).values() for batch in queue]
        held += list(getattr(accumulator, "_pending_batches", ()))
        accumulator.fail_all(Unavailable("the producer stopped before Kafka acknowledged this record"))
        # the caller reports the loss once (stop() returns False); the futures of each batch
        # failed here (its acknowledgement, its drain waiter) are marked retrieved, or asyncio
        # logs "Future exception was never retrieved" for every one of them
        for batch in held:
            for future in (getattr(batch, "future", None), getattr(batch, "_drain_waiter", None)):
                if future is not None and future.done() and not future.cancelled():
                    future.exception()
    for what, closing in (("sender", getattr(sender, "close", None)), ("client", getattr(client, "close", None))):
        if closing is None:
            continue
        try:
            await asyncio.wait_for(closing(), max(timeout, 0.5))
        except asyncio.CancelledError:
            # aiokafka's sender.close() re-raises its own task's cancellation; only ours propagates
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
        except Exception:  # noqa: BLE001 - best effort on the way out (TimeoutError included)
            log.warning("the Kafka producer's %s did not close cleanly", what, exc_info=True)


#: Largest record batch per partition (below the broker's default message.max.bytes, 1 MiB).
MAX_BATCH_BYTES = 512 * 1024
#: ``send_batch`` lets the event loop through after this many records (about 1 ms of encoding).
YIELD_EVERY = 64


@contextlib.contextmanager
def _given_up_on_failure(futures: list[asyncio.Future[Any]]) -> Iterator[None]:
    """When a send fails or is cancelled, the acknowledgements already asked for are given up
    (cancelled): nobody waits for them any more, so when the driver later fails them (Kafka down
    at shutdown) asyncio does not log "Future exception was never retrieved" for each. The records
    themselves stay with the driver (a cancelled wait does not withdraw them)."""
    try:
        yield
    except BaseException:
        for future in futures:
            future.cancel()
        raise


def kafka_producer(settings: KafkaSettings, client_id: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers, client_id=client_id,
        acks="all", enable_idempotence=True, max_batch_size=MAX_BATCH_BYTES, partitioner=key_partitioner,
    )


class EventProducer:
    def __init__(self, settings: KafkaSettings, *, service: str, driver: ProducerDriver | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.source = source_for(service)
        self._settings = settings
        self._service = service
        self._driver = driver
        self._clock = clock
        self._started = False

    async def start(self) -> None:
        if self._driver is None:
            self._driver = kafka_producer(self._settings, client_id=self._service)
        async with translated_kafka_errors("starting the Kafka producer"):
            await self._driver.start()
        self._started = True

    async def stop(self, timeout: float | None = None) -> bool:
        """Flush what the driver holds and close it; True once everything is acknowledged.

        With ``timeout``, a flush that does not finish in time (Kafka down: an idempotent
        producer never expires what it holds) is given up: the records still held fail with
        ``Unavailable``, the driver's sender task is cancelled and awaited and its
        connections closed, so nothing of the producer outlives this call. Returns False then.
        """
        driver = self._driver
        if driver is None or not self._started:
            return True
        self._started = False
        if timeout is None:
            await driver.stop()
            return True
        stopping = asyncio.ensure_future(driver.stop())
        try:
            done, _ = await asyncio.wait({stopping}, timeout=timeout)
        except asyncio.CancelledError:
            stopping.cancel()
            raise
        if stopping in done:
            stopping.result()
            return True
        stopping.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await stopping
        await _abandon(driver, timeout)
        return False

    def _ready_driver(self) -> ProducerDriver:
        if self._driver is None or not self._started:
            raise Unavailable("the Kafka producer is not started")
        return self._driver

    async def send(self, topic: str, key: str, message: Message, *, subject: str | None = None,
                   event_id: str | None = None) -> str:
        """Publish one event and wait for the broker's acknowledgement; return its id."""
        return (await self.send_batch(topic, [Outgoing(key, message, subject, event_id)]))[0]

    async def send_batch(self, topic: str, items: Iterable[Outgoing]) -> list[str]:
        """Publish several events, pipelined (order kept per key), and wait for every
        acknowledgement; return their ids. If it raises, some may have been written:
        sending again with the same ids lets consumers drop the repeats."""
        items = list(items)
        if not items:
            return []
        driver = self._ready_driver()
        moment = self._clock()
        events = [new_event(item.message, source=self.source, event_id=item.event_id, subject=item.subject,
                            time=item.time or moment) for item in items]
        single = len(items) == 1
        with (send_span(topic, events[0].id, items[0].key) if single else send_batch_span(topic, len(items))
              ) as trace_headers:
            futures: list[asyncio.Future[Any]] = []
            async with translated_kafka_errors(f"sending to {topic}"):
                if getattr(driver, "create_batch", None) is not None and not single:
                    await self._send_built(driver, topic, items, events, trace_headers)
                    return [event.id for event in events]
                with _given_up_on_failure(futures):
                    for index, (item, event) in enumerate(zip(items, events, strict=True), 1):
                        value, headers = encode(event)
                        headers += trace_headers
                        futures.append(await driver.send(topic, value=value, key=item.key.encode(), headers=headers))
                        if index % YIELD_EVERY == 0:
                            # the driver only yields when its buffer is full: let the loop through now
                            # and then, so a large batch does not hold up what else runs on it
                            await asyncio.sleep(0)
                    await asyncio.gather(*futures)
        return [event.id for event in events]

    async def _send_built(self, driver: Any, topic: str, items: list[Outgoing], events: list[Any],
                          trace_headers: list[tuple[str, bytes]]) -> None:
        """``send_batch`` through aiokafka's batch interface: the records are partitioned here (the
        same murmur2 partitioner as ``send``), appended to one record batch per partition and handed
        over a batch at a time, with one future per batch instead of one per record. About half the
        CPU per record of ``send`` (its metadata wait, partition lookup, future and bookkeeping for
        every record); the bytes on the wire are the same. Order per key is kept: a partition's
        records go in order into its batch, and a full batch is submitted before the next is begun."""
        partitions = list(await driver.partitions_for(topic))
        limit = getattr(driver, "_max_request_size", 1 << 20)
        builders: dict[int, Any] = {}
        futures: list[asyncio.Future[Any]] = []
        with _given_up_on_failure(futures):
            for index, (item, event) in enumerate(zip(items, events, strict=True), 1):
                value, headers = encode(event)
                headers += trace_headers
                key = item.key.encode()
                if len(value) + len(key) > limit - 65536 and (
                        DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers) > limit):
                    # what send() refuses for a record (the records before it may have gone, as with send())
                    raise MessageSizeTooLargeError(f"the event {event.id} is larger than the producer's "
                                                   f"max_request_size ({limit} bytes)")
                partition = key_partitioner(key, partitions, partitions)
                builder = builders.get(partition)
                if builder is None:
                    builder = builders[partition] = driver.create_batch()
                if builder.append(key=key, value=value, timestamp=None, headers=headers) is None:
                    futures.append(await driver.send_batch(builder, topic, partition=partition))
                    builder = builders[partition] = driver.create_batch()
                    builder.append(key=key, value=value, timestamp=None, headers=headers)
                if index % YIELD_EVERY == 0:
                    await asyncio.sleep(0)
            for partition, builder in builders.items():
                futures.append(await driver.send_batch(builder, topic, partition=partition))
            await asyncio.gather(*futures)

    async def send_record(self, topic: str, *, key: bytes | None, value: bytes | None,
                          headers: Sequence[tuple[str, bytes]]) -> None:
        """Forward a record byte for byte (dead-lettering, replay)."""
        with send_span(topic):
            async with translated_kafka_errors(f"sending to {topic}"):
                future = await self._ready_driver().send(topic, value=value, key=key, headers=list(headers))
                await future
