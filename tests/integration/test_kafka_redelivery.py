"""Redelivery after a crash on the real Kafka, made harmless by the PostgreSQL inbox.

The handler writes its effect and the inbox mark in one transaction, so:
a crash after that commit but before the offset commit redelivers the record and
the inbox keeps the handler from running again; a crash before it leaves nothing,
and the redelivery does the work once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from loopline.events.v1.drift_pb2 import RetrainRequested

from loopline_core.db.migrations import core_migrations, migrate
from loopline_core.db.pool import create_pool
from loopline_core.kafka.cloudevents import EventTypes
from loopline_core.kafka.consumer import EventConsumer
from loopline_core.kafka.handlers import Delivery
from loopline_core.kafka.inbox import idempotent
from loopline_core.kafka.inbox_postgres import PostgresInbox, claim_in
from loopline_core.kafka.producer import EventProducer
from loopline_core.kafka.topics import RETRAIN
from loopline_core.settings import KafkaSettings, PostgresSettings


class SimulatedCrash(BaseException):
    """Stands for the process dying: nothing in the consumer loop handles it."""


@pytest.fixture
async def pool(postgres_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    schema = f"inbox_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(postgres_dsn)
    try:
        await migrate(conn, schema, core_migrations())
        await conn.execute(f'CREATE TABLE "{schema}".effects (event_id text NOT NULL, request_id text NOT NULL)')
    finally:
        await conn.close()
    pool = await create_pool(PostgresSettings(dsn=postgres_dsn, min_pool_size=1, max_pool_size=5), schema)
    yield pool
    await pool.close()
    conn = await asyncpg.connect(postgres_dsn)
    await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    await conn.close()


@pytest.fixture
async def producer(kafka_bootstrap: str) -> AsyncIterator[EventProducer]:
    producer = EventProducer(KafkaSettings(bootstrap_servers=kafka_bootstrap), service=f"test-{uuid.uuid4().hex[:8]}")
    await producer.start()
    yield producer
    await producer.stop()


def _consumer(kafka_bootstrap: str, group_id: str, producer: EventProducer, handler) -> EventConsumer:  # type: ignore[no-untyped-def]
    settings = KafkaSettings(bootstrap_servers=kafka_bootstrap, retry_backoff_ms=20)
    return EventConsumer(settings, group_id=group_id, topics=[RETRAIN], types=EventTypes(RetrainRequested),
                         handler=handler, dead_letters=producer)


async def _run_until_handled(consumer: EventConsumer, event_id: str, inbox: PostgresInbox) -> None:
    task = asyncio.create_task(consumer.run())
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while not await inbox.seen("trainer", event_id) or consumer.stats.handled == 0:
            assert not task.done(), task
            assert asyncio.get_running_loop().time() < deadline, "the record was not handled in time"
            await asyncio.sleep(0.05)
    finally:
        consumer.stop()
        await asyncio.wait_for(task, 30)


@pytest.mark.parametrize("crash", ["after the inbox transaction", "inside the inbox transaction"])
async def test_a_crash_before_commit_redelivers_and_the_inbox_keeps_the_effect_single(
    kafka_bootstrap: str, pool: asyncpg.Pool, producer: EventProducer, crash: str
) -> None:
    request_id = str(uuid.uuid4())
    event_id = await producer.send(RETRAIN, "churn", RetrainRequested(request_id=request_id, model="churn"))
    inbox = PostgresInbox(pool)
    runs: list[str] = []
    crashing = True

    async def on_retrain_requested(delivery: Delivery, conn: asyncpg.Connection) -> None:
        runs.append(delivery.event.id)
        await conn.execute("INSERT INTO effects (event_id, request_id) VALUES ($1, $2)",
                           delivery.event.id, delivery.event.data.request_id)
        if crashing and crash == "inside the inbox transaction":
            raise SimulatedCrash()

    handle = idempotent("trainer", inbox, on_retrain_requested)

    async def handler(delivery: Delivery) -> None:
        if delivery.event.source != producer.source:
            return
        await handle(delivery)
        if crashing and crash == "after the inbox transaction":
            raise SimulatedCrash()

    group_id = f"test-inbox-{uuid.uuid4().hex[:8]}"
    with pytest.raises(SimulatedCrash):
        await asyncio.wait_for(_consumer(kafka_bootstrap, group_id, producer, handler).run(), 60)
    effects_after_crash = await pool.fetchval("SELECT count(*) FROM effects")
    assert effects_after_crash == (1 if crash == "after the inbox transaction" else 0)

    crashing = False
    second = _consumer(kafka_bootstrap, group_id, producer, handler)
    await _run_until_handled(second, event_id, inbox)
    assert runs == [event_id] * (1 if crash == "after the inbox transaction" else 2)
    assert await pool.fetchval("SELECT count(*) FROM effects WHERE event_id = $1", event_id) == 1


async def test_concurrent_claims_of_one_event_do_the_work_once(pool: asyncpg.Pool) -> None:
    inbox = PostgresInbox(pool)
    event_id = str(uuid.uuid4())
    schema = await pool.fetchval("SELECT current_schema()")

    async def others_wait_on_the_claim() -> bool:
        waiting = await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND application_name = $1", schema)
        return waiting == 2

    async def work() -> bool:
        async with inbox.claim("trainer", event_id) as conn:
            if conn is None:
                return False
            await conn.execute("INSERT INTO effects VALUES ($1, 'r')", event_id)
            deadline = asyncio.get_running_loop().time() + 30
            while not await others_wait_on_the_claim():  # hold the claim until both others block on it
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.01)
            return True

    assert sorted(await asyncio.gather(*(work() for _ in range(3)))) == [False, False, True]
    assert await pool.fetchval("SELECT count(*) FROM effects WHERE event_id = $1", event_id) == 1


async def test_a_failed_claim_rolls_back_effects_and_mark(pool: asyncpg.Pool) -> None:
    inbox = PostgresInbox(pool)
    with pytest.raises(RuntimeError):
        async with inbox.claim("trainer", "e-1") as conn:
            assert conn is not None
            await conn.execute("INSERT INTO effects VALUES ('e-1', 'r')")
            raise RuntimeError("handler failed")
    assert not await inbox.seen("trainer", "e-1")
    assert await pool.fetchval("SELECT count(*) FROM effects") == 0
    async with inbox.claim("other", "e-1") as conn:
        assert conn is not None


async def test_claim_in_joins_the_callers_transaction(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        with pytest.raises(RuntimeError, match="open transaction"):
            await claim_in(conn, "trainer", "e-2")
        async with conn.transaction():
            assert await claim_in(conn, "trainer", "e-2")
            assert not await claim_in(conn, "trainer", "e-2")
    assert await PostgresInbox(pool).seen("trainer", "e-2")
