"""The consumer loop: decode, handle, retry what is retryable, dead-letter the rest,
and commit only what is done.

Delivery is at least once. An offset is committed only after its record was
handled or dead-lettered (after each polled batch), so a crash or a rebalance
may redeliver records; handlers make that harmless (``loopline_core.kafka.inbox``).

For each record, in order per partition:

- a record that does not decode (``MalformedEvent``) goes to ``<topic>.dlq``;
- a retryable error (``err.retryable``, e.g. ``Unavailable``) is retried in place,
  with exponential backoff, up to ``KafkaSettings.max_retries`` times: later
  records of the partition wait, none is skipped;
- any other error, and a retryable one past the limit, goes to ``<topic>.dlq``
  with the original key, value and headers plus ``dlq_*`` reason headers, and
  the loop goes on. If the dead-letter topic cannot be written, that is retried
  until it can (the record is never dropped).

Batch mode (``batch_handler=``): the decoded records of each polled partition
batch go to the handler in one call, inside one ``process <topic>`` span linked
to the records' traces. A retryable error retries the whole batch; any other
error falls back to one record at a time (each as a one-element batch) so that
only the poison record is dead-lettered. Offsets are committed after the batch.

Partition lanes (``concurrent_partitions=True``): the batches of one poll are
grouped by partition *number* across the consumed topics, and the lanes run side
by side, each lane's batches one after another. Co-partitioned topics (same key,
same partition count, e.g. predictions and feedback) put one key's records in one
lane, so a join never sees two of its inputs half-applied at once; different keys
overlap their database and broker round trips. Off by default: order across
partitions is then the poll's, one batch at a time.

Topping up a poll (``poll_top_up_ms`` > 0): the driver (aiokafka) holds at most one
fetched response per partition and sends the next fetch only once that was consumed,
so a poll after a long batch gets what arrived early in that batch, and the rest waits
a whole extra batch. With a top-up, a poll that returned records asks once more, for at
most that many milliseconds, so the records that arrived while the last batch was being
handled join this one (order per partition kept; never more than ``max_records``). Off by
default.

``stop()`` or cancelling ``run()`` is a graceful stop: the record in hand is
finished (a retry wait is cut short and the record left for redelivery), what is
done is committed, and the consumer leaves its group.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from aiokafka.errors import CommitFailedError, IllegalStateError

from loopline_core.errors import InvalidArgument, LooplineError
from loopline_core.kafka.cloudevents import EventTypes
from loopline_core.kafka.driver_errors import translated_kafka_errors
from loopline_core.kafka.handlers import BatchHandler, Delivery, Handler
from loopline_core.kafka.processing import RecordProcessor
from loopline_core.kafka.producer import EventProducer
from loopline_core.kafka.retry import Backoff
from loopline_core.kafka.topics import CATALOGUE
from loopline_core.settings import KafkaSettings

log = logging.getLogger(__name__)


class ConsumerDriver(Protocol):
    """The part of ``AIOKafkaConsumer`` used here (the in-memory broker has it too)."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def getmany(self, *partitions: TopicPartition, timeout_ms: int = 0,
                      max_records: int | None = None) -> dict[TopicPartition, list[ConsumerRecord]]: ...
    async def commit(self, offsets: dict[TopicPartition, int] | None = None) -> None: ...


@dataclass
class ConsumerStats:
    """Counters for metrics: records handled, retries made, records dead-lettered."""

    handled: int = 0
    retried: int = 0
    dead_lettered: int = 0


def kafka_consumer(settings: KafkaSettings, topics: Sequence[str], group_id: str, *, fetch_min_bytes: int = 1,
                   fetch_max_wait_ms: int = 500, co_partitioned: bool = False) -> AIOKafkaConsumer:
    """``fetch_min_bytes`` > 1 lets the broker hold a fetch up to ``fetch_max_wait_ms``
    to fill it: fewer, larger batches for a little latency (aiokafka's defaults here).

    ``co_partitioned``: the topics are joined by key, so every member of the group must
    get the same partition numbers of each topic (range assignment, as Kafka Streams
    requires); round robin, the default, could give predictions-1 and feedback-1 to two
    processes that would then each miss the other's half of a join."""
    assignor = RangePartitionAssignor if co_partitioned else RoundRobinPartitionAssignor
    return AIOKafkaConsumer(
        *topics, bootstrap_servers=settings.bootstrap_servers, group_id=group_id, client_id=group_id,
        enable_auto_commit=False, auto_offset_reset="earliest", fetch_min_bytes=fetch_min_bytes,
        fetch_max_wait_ms=fetch_max_wait_ms, partition_assignment_strategy=(assignor,),
    )


def _one_at_a_time(batch_handler: BatchHandler) -> Handler:
    async def handle(delivery: Delivery) -> None:
        await batch_handler([delivery])

    return handle


def _check_dead_letter_topics(topics: Sequence[str]) -> None:
    without = {spec.name for spec in CATALOGUE if not spec.dead_letter}
    if bad := sorted(without.intersection(topics)):
        raise InvalidArgument(f"topics {bad} have no dead-letter topic to consume with", field="topics")


class EventConsumer:
    """Consumes ``topics`` as ``group_id``; run it as a service background loop."""

    def __init__(self, settings: KafkaSettings, *, group_id: str, topics: Sequence[str], types: EventTypes,
                 dead_letters: EventProducer, handler: Handler | None = None,
                 batch_handler: BatchHandler | None = None, driver: ConsumerDriver | None = None,
                 max_records: int = 100, stop_grace_s: float = 30.0, concurrent_partitions: bool = False,
                 fetch_min_bytes: int = 1, fetch_max_wait_ms: int = 500, co_partitioned: bool = False,
                 poll_top_up_ms: int = 0, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        """Exactly one of ``handler`` (one record at a time) and ``batch_handler``
        (each polled partition batch at once; see ``RecordProcessor.process_batch``).
        ``concurrent_partitions``: partition lanes, ``poll_top_up_ms``: topping up a poll
        (module docstring); ``fetch_*`` and ``co_partitioned``: see ``kafka_consumer``
        (unused with an injected ``driver``)."""
        _check_dead_letter_topics(topics)
        if (handler is None) == (batch_handler is None):
            raise InvalidArgument("give exactly one of handler and batch_handler", field="handler")
        self._batch_handler = batch_handler
        if batch_handler is not None:
            handler = _one_at_a_time(batch_handler)
        assert handler is not None
        self.group_id = group_id
        self.topics = list(topics)
        self.stats = ConsumerStats()
        self._settings = settings
        self._driver = driver
        self._max_records = max_records
        self._stop_grace_s = stop_grace_s
        self._concurrent = concurrent_partitions
        self._top_up_ms = poll_top_up_ms
        self._driver_options = {"fetch_min_bytes": fetch_min_bytes, "fetch_max_wait_ms": fetch_max_wait_ms,
                                "co_partitioned": co_partitioned}
        self._stopping = asyncio.Event()
        self._pending: dict[TopicPartition, int] = {}
        self._processor = RecordProcessor(
            group_id=group_id, types=types, handler=handler, dead_letters=dead_letters,
            backoff=Backoff.from_settings(settings), max_retries=settings.max_retries,
            stats=self.stats, stopping=self._stopping, clock=clock,
        )

    def stop(self) -> None:
        """Ask ``run()`` to finish the record in hand, commit and return."""
        self._stopping.set()

    async def run(self) -> None:
        if self._driver is None:
            self._driver = kafka_consumer(self._settings, self.topics, self.group_id, **self._driver_options)
        driver = self._driver
        async with translated_kafka_errors(f"starting consumer {self.group_id}"):
            await driver.start()
        try:
            while not self._stopping.is_set():
                polled = await self._poll(driver)
                if self._concurrent and len(polled) > 1:
                    await self._run_lanes(polled)
                else:
                    await self._lane(list(polled.values()))
                await self._commit(driver)
        finally:
            try:
                await self._commit(driver)
            except LooplineError as exc:
                log.warning("%s: final commit failed (%s); records since the last commit will be redelivered",
                            self.group_id, exc)
            finally:
                await driver.stop()

    async def _lane(self, batches: list[list[ConsumerRecord]]) -> bool:
        """Finish partition batches one after another; False once a stop cut it short."""
        for records in batches:
            if self._stopping.is_set():
                return False
            if self._batch_handler is not None:
                if not await self._finish_batch(records, self._batch_handler):
                    return False
                continue
            for record in records:
                if self._stopping.is_set() or not await self._finish(record):
                    return False
        return True

    async def _run_lanes(self, polled: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        lanes: dict[int, list[list[ConsumerRecord]]] = {}
        for tp, records in polled.items():
            lanes.setdefault(tp.partition, []).append(records)
        tasks = [asyncio.ensure_future(self._lane(batches)) for batches in lanes.values()]
        try:
            await asyncio.wait(tasks)
        except asyncio.CancelledError:
            # Each lane finishes its batch in hand (within the stop grace), as run() alone would.
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)
            raise
        for task in tasks:
            if (error := task.exception()) is not None:
                raise error

    async def _poll(self, driver: ConsumerDriver) -> dict[TopicPartition, list[ConsumerRecord]]:
        poll = asyncio.ensure_future(driver.getmany(timeout_ms=1000, max_records=self._max_records))
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({poll, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not poll.done():
                poll.cancel()
                await asyncio.wait({poll})  # let the driver unwind before going on
        if poll.cancelled():
            return {}
        async with translated_kafka_errors(f"polling as {self.group_id}"):
            polled = poll.result()
        if self._top_up_ms and polled and not self._stopping.is_set():
            room = self._max_records - sum(len(records) for records in polled.values())
            if room > 0:
                async with translated_kafka_errors(f"polling as {self.group_id}"):
                    more = await driver.getmany(timeout_ms=self._top_up_ms, max_records=room)
                if more:
                    polled = {tp: list(records) for tp, records in polled.items()}
                    for tp, records in more.items():
                        polled.setdefault(tp, []).extend(records)
        return polled

    async def _finish(self, record: ConsumerRecord) -> bool:
        # Shielded: cancelling run() (service shutdown) must not cut a handler short.
        task = asyncio.ensure_future(self._processor.process(record))
        try:
            done = await asyncio.shield(task)
        except asyncio.CancelledError:
            self._stopping.set()
            try:
                await asyncio.wait({task}, timeout=self._stop_grace_s)
            finally:
                if not task.done():
                    task.cancel()
            if task.done() and not task.cancelled() and task.exception() is None and task.result():
                self._pending[TopicPartition(record.topic, record.partition)] = record.offset + 1
            raise
        if done:
            self._pending[TopicPartition(record.topic, record.partition)] = record.offset + 1
        return done

    async def _finish_batch(self, records: list[ConsumerRecord], batch_handler: BatchHandler) -> bool:
        """Like ``_finish`` for a partition batch; True when all of it is done."""
        task = asyncio.ensure_future(self._processor.process_batch(records, batch_handler))
        try:
            done = await asyncio.shield(task)
        except asyncio.CancelledError:
            self._stopping.set()
            try:
                await asyncio.wait({task}, timeout=self._stop_grace_s)
            finally:
                if not task.done():
                    task.cancel()
            if task.done() and not task.cancelled() and task.exception() is None:
                self._mark_done(records, task.result())
            raise
        self._mark_done(records, done)
        return done == len(records)

    def _mark_done(self, records: list[ConsumerRecord], done: int) -> None:
        if done:
            last = records[done - 1]
            self._pending[TopicPartition(last.topic, last.partition)] = last.offset + 1

    async def _commit(self, driver: ConsumerDriver) -> None:
        if not self._pending:
            return
        offsets, self._pending = self._pending, {}
        async with translated_kafka_errors(f"committing offsets of {self.group_id}"):
            try:
                await driver.commit(offsets)
            except (CommitFailedError, IllegalStateError) as exc:
                # The partitions moved to another member, which redelivers these records.
                log.warning("%s: commit of %s refused after a rebalance (%s)", self.group_id, offsets, exc)
