"""A rebalance while a batch is applied: the revoke waits for the batch, saves a
consistent checkpoint, and a batch fetched before the revoke is left to the new owner."""

from __future__ import annotations

import asyncio

from loopline_core.kafka.memory import InMemoryBroker
from loopline_core.kafka.producer import EventProducer
from loopline_core.kafka.topics import DRIFT_INPUTS
from loopline_core.settings import KafkaSettings

from loopline_drift_detector.adapters.checkpoints import InMemoryCheckpoints
from loopline_drift_detector.domain.retrain import RetrainConfig
from loopline_drift_detector.handlers.outbox import StatePersistence

KEY = b"unit-test-checkpoint-key"


def persistence(store: InMemoryCheckpoints) -> StatePersistence:
    producer = EventProducer(KafkaSettings(), service="drift-detector", driver=InMemoryBroker().producer())
    return StatePersistence(store, producer, group="g", topic=DRIFT_INPUTS, key=KEY, retrain=RetrainConfig())


async def test_without_a_group_listener_every_delivered_partition_is_ours() -> None:
    p = persistence(InMemoryCheckpoints())
    assert await p.state(2) is not None and p.owned is None


async def test_a_revoked_partition_is_saved_after_the_batch_in_hand_and_then_skipped() -> None:
    store = InMemoryCheckpoints()
    p = persistence(store)
    await p.assigned([0, 1])
    state = await p.state(1)
    assert state is not None

    async with p.lock:  # a batch being applied
        revoke = asyncio.create_task(p.revoked([1]))
        await asyncio.sleep(0.01)
        assert not revoke.done()  # the rebalance waits for the batch
        state.next_offset = 42
    await revoke
    assert 1 not in p.states and p.owned == {0}
    saved = await store.load("g", DRIFT_INPUTS, 1)
    assert saved is not None and saved.next_offset == 42  # the whole batch, not half of it
    assert await p.state(1) is None  # a batch fetched before the revoke is not applied here
    assert await p.state(0) is not None
