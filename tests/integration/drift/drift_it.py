"""Helpers for the drift detector's integration tests: the wired service on the session's
Kafka and PostgreSQL (its own schema), topic reads, and an offline oracle."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.partitioner import murmur2
from google.protobuf.message import Message
from loopline.events.v1 import drift_inputs_pb2 as dipb
from loopline.events.v1 import drift_pb2 as dpb
from loopline.events.v1 import predictions_pb2 as epb
from loopline_core.db.migrations import core_migrations, load_folder, migrate
from loopline_core.kafka.cloudevents import EventTypes, decode
from loopline_core.kafka.handlers import Delivery
from loopline_core.kafka.topics import DRIFT_INPUTS, LABELED, PREDICTIONS, all_topics
from loopline_drift_detector.adapters.checkpoints import InMemoryCheckpoints, PostgresCheckpoints
from loopline_drift_detector.adapters.registry import InMemoryVersions
from loopline_drift_detector.bootstrap import DriftDetector, wire
from loopline_drift_detector.handlers.detect import Detection
from loopline_drift_detector.handlers.outbox import StatePersistence
from loopline_drift_detector.settings import DriftSettings

PARTITIONS = {spec.name: spec.partitions for spec in all_topics()}
TYPES = EventTypes(dpb.DriftDetected, dpb.RetrainRequested, dipb.DriftInputs, epb.PredictionLogged,
                   epb.LabeledPrediction)
KEY = b"it-drift-checkpoint-key"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def partition_of(key: str, topic: str = DRIFT_INPUTS) -> int:
    return (murmur2(key.encode()) & 0x7FFFFFFF) % PARTITIONS[topic]


def settings(kafka_bootstrap: str, postgres_dsn: str, schema: str, run: str, **extra: object) -> DriftSettings:
    return DriftSettings(**{
        "kafka": {"bootstrap_servers": kafka_bootstrap}, "postgres": {"dsn": postgres_dsn},
        "postgres_schema": schema, "checkpoint_key": KEY.decode(), "checkpoint_interval_s": 0.2,
        "route_group": f"{run}.route", "detect_group": f"{run}.detect", "max_records": 300, **extra})


@contextlib.asynccontextmanager
async def schema_pool(postgres_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    schema = unique("drift_it").replace("-", "_")
    migrations = load_folder("drift-detector", _migrations_folder())
    conn = await asyncpg.connect(postgres_dsn)
    try:
        await migrate(conn, schema, [*core_migrations(), *migrations])
    finally:
        await conn.close()
    pool = await asyncpg.create_pool(postgres_dsn, min_size=1, max_size=4,
                                     server_settings={"search_path": schema})
    try:
        yield pool
    finally:
        await pool.close()


def _migrations_folder():  # noqa: ANN202
    from importlib import resources
    return resources.files("loopline_drift_detector") / "migrations"


class Replica:
    """One running drift-detector process (both loops), started and stopped by the test."""

    def __init__(self, s: DriftSettings, pool: asyncpg.Pool, versions: InMemoryVersions) -> None:
        self.service: DriftDetector = wire(s, store=PostgresCheckpoints(pool), versions=versions)
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await self.service.producer.start()
        self._tasks = [asyncio.create_task(self.service.run_route()),
                       asyncio.create_task(self.service.run_detect())]

    async def stop(self) -> None:
        self.service.route.stop()
        self.service.detect.stop()
        await asyncio.gather(*self._tasks)
        await self.service.producer.stop()


async def start_at_the_end(bootstrap: str, s: DriftSettings) -> dict[int, int]:
    """Commits the current ends of the input topics for the run's two groups, so that they
    see only what the test publishes next: a new group would otherwise start from the
    beginning, behind every record earlier tests left there (models this test's registry
    does not know, each dead-lettered on its own), and the test's wait would run out.
    Returns where each drift-inputs partition starts for the run."""
    starts: dict[int, int] = {}
    for group, topics in ((s.route_group, (PREDICTIONS, LABELED)), (s.detect_group, (DRIFT_INPUTS,))):
        client = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
        await client.start()
        try:
            partitions = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS[t])]
            client.assign(partitions)
            ends = await client.end_offsets(partitions)
            await client.commit(ends)
            starts.update({tp.partition: offset for tp, offset in ends.items() if tp.topic == DRIFT_INPUTS})
        finally:
            await client.stop()
    return starts


async def read_topic(bootstrap: str, topic: str, key: str) -> list[ConsumerRecord[bytes, bytes]]:
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await reader.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS[topic])]
        reader.assign(partitions)
        await reader.seek_to_beginning(*partitions)
        end = await reader.end_offsets(partitions)
        records: list[ConsumerRecord[bytes, bytes]] = []
        while [tp for tp in partitions if await reader.position(tp) < end[tp]]:
            for batch in (await reader.getmany(timeout_ms=1000)).values():
                records.extend(r for r in batch if r.key == key.encode())
        return sorted(records, key=lambda r: (r.partition, r.offset))
    finally:
        await reader.stop()


def routed_events(records: list[ConsumerRecord[bytes, bytes]]) -> int:
    """How many events drift-inputs records carry (one ``DriftInputs`` per model and routed batch)."""
    count = 0
    for r in records:
        message = decode(r.value, r.headers, TYPES).data
        count += len(message.predictions) + len(message.labeled) if isinstance(message, dipb.DriftInputs) else 1
    return count


async def events(bootstrap: str, topic: str, key: str) -> list[Message]:
    return [decode(r.value, r.headers, TYPES).data for r in await read_topic(bootstrap, topic, key)]


async def wait_for(condition: Callable[[], object], what: str, timeout_s: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await condition():  # type: ignore[misc]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def checkpointed_offset(pool: asyncpg.Pool, group: str, partition: int) -> int:
    value = await pool.fetchval("SELECT next_offset FROM partition_checkpoints WHERE group_id = $1 AND topic = $2"
                                " AND partition = $3", group, DRIFT_INPUTS, partition)
    return value or 0


async def oracle(bootstrap: str, model: str, versions: InMemoryVersions, s: DriftSettings) -> tuple[list[str], list[str]]:
    """Drift ids and request ids an uninterrupted detector makes on the routed log as it is."""
    records = await read_topic(bootstrap, DRIFT_INPUTS, model)
    store = InMemoryCheckpoints()
    published: list[tuple[str, str]] = []

    class Capture:
        async def send_batch(self, topic: str, items) -> list[str]:  # noqa: ANN001
            published.extend((topic, i.event_id) for i in items)
            return [i.event_id for i in items]

    persistence = StatePersistence(store, Capture(), group="oracle", topic=DRIFT_INPUTS, key=KEY,  # type: ignore[arg-type]
                                   retrain=s.retrain.config())
    detection = Detection(versions, persistence, config_for=s.monitor_config, checkpoint_interval_s=3600)
    for r in records:
        event = decode(r.value, r.headers, TYPES)
        await detection.on_batch([Delivery(r.topic, r.partition, r.offset, model, event)])
    return ([e for t, e in published if t.endswith("drift.v1")], [e for t, e in published if t.endswith("retrain.v1")])


SECOND = timedelta(seconds=1)
