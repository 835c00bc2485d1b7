"""An in-memory broker with the producer and consumer driver surface used by
``EventProducer`` and ``EventConsumer``: for unit tests and in-memory wiring.

It keeps the properties the event layer relies on: topics exist only if created
(no auto-creation), records keep their order per partition and are placed by key,
a group resumes from its committed offsets, and ``unavailable`` makes every send
fail like a broker that cannot be reached (counted in ``refused``). One consumer
per group gets every partition (no rebalancing).
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Iterable, Sequence

from aiokafka.errors import KafkaConnectionError, UnknownTopicOrPartitionError
from aiokafka.structs import ConsumerRecord, RecordMetadata, TopicPartition

from loopline_core.kafka.topics import TopicSpec, all_topics


class InMemoryBroker:
    def __init__(self, topics: Iterable[TopicSpec] | None = None) -> None:
        specs = all_topics() if topics is None else list(topics)
        self._logs: dict[str, list[list[ConsumerRecord[bytes, bytes]]]] = {
            spec.name: [[] for _ in range(spec.partitions)] for spec in specs
        }
        self._committed: dict[tuple[str, TopicPartition], int] = {}
        self._appended = asyncio.Condition()
        self.unavailable = False
        #: Sends refused while ``unavailable`` was set.
        self.refused = 0

    def records(self, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
        """Every record of a topic, partition by partition."""
        return [record for partition in self._logs[topic] for record in partition]

    def committed(self, group_id: str, topic: str, partition: int = 0) -> int | None:
        return self._committed.get((group_id, TopicPartition(topic, partition)))

    def producer(self) -> MemoryProducer:
        return MemoryProducer(self)

    def consumer(self, *topics: str, group_id: str) -> MemoryConsumer:
        return MemoryConsumer(self, topics, group_id)

    async def _append(self, topic: str, key: bytes | None, value: bytes | None,
                      headers: Sequence[tuple[str, bytes]]) -> RecordMetadata:
        if self.unavailable:
            self.refused += 1
            raise KafkaConnectionError("in-memory broker marked unavailable")
        if topic not in self._logs:
            raise UnknownTopicOrPartitionError(topic)
        partitions = self._logs[topic]
        index = zlib.crc32(key) % len(partitions) if key is not None else 0
        offset = len(partitions[index])
        timestamp = int(time.time() * 1000)
        partitions[index].append(ConsumerRecord(
            topic, index, offset, timestamp, 0, key, value, None,
            len(key or b""), len(value or b""), tuple(headers),
        ))
        async with self._appended:
            self._appended.notify_all()
        return RecordMetadata(topic, index, TopicPartition(topic, index), offset, timestamp, 0, 0)


class MemoryProducer:
    def __init__(self, broker: InMemoryBroker) -> None:
        self._broker = broker

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def send(self, topic: str, value: bytes | None = None, key: bytes | None = None,
                   partition: int | None = None, timestamp_ms: int | None = None,
                   headers: Sequence[tuple[str, bytes]] | None = None) -> asyncio.Future[RecordMetadata]:
        future: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
        future.set_result(await self._broker._append(topic, key, value, headers or ()))
        return future


class MemoryConsumer:
    def __init__(self, broker: InMemoryBroker, topics: Sequence[str], group_id: str) -> None:
        self._broker = broker
        self._group_id = group_id
        self._positions: dict[TopicPartition, int] = {}
        for topic in topics:
            if topic not in broker._logs:
                raise UnknownTopicOrPartitionError(topic)
            for index in range(len(broker._logs[topic])):
                tp = TopicPartition(topic, index)
                self._positions[tp] = broker._committed.get((group_id, tp), 0)
        self.stopped = False

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        self.stopped = True

    def _take(self, max_records: int | None) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
        batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = {}
        budget = max_records or 500
        for tp, position in self._positions.items():
            records = self._broker._logs[tp.topic][tp.partition][position:position + budget]
            if records:
                batch[tp] = records
                self._positions[tp] = position + len(records)
                budget -= len(records)
            if budget <= 0:
                break
        return batch

    async def getmany(self, *partitions: TopicPartition, timeout_ms: int = 0,
                      max_records: int | None = None) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
        if not self._has_records():
            async with self._broker._appended:
                try:
                    await asyncio.wait_for(self._broker._appended.wait_for(self._has_records), timeout_ms / 1000)
                except TimeoutError:
                    return {}
        return self._take(max_records)

    def _has_records(self) -> bool:
        return any(len(self._broker._logs[tp.topic][tp.partition]) > position
                   for tp, position in self._positions.items())

    async def commit(self, offsets: dict[TopicPartition, int] | None = None) -> None:
        for tp, offset in (offsets or {}).items():
            self._broker._committed[(self._group_id, tp)] = offset
