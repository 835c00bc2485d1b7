"""The outbox relay: nothing lost across a crash, re-sent events keep their id, order kept."""

from __future__ import annotations

import asyncio

import pytest
from registry_world import TRAINER, World
from loopline_core.errors import Unavailable

from loopline_registry.adapters.memory.outbox import MemoryOutbox, MemoryPublisher
from loopline_registry.service.commands import PromoteModelVersion
from loopline_registry.service.relay import OutboxRelay


class CrashAfterPublish(MemoryPublisher):
    """Publishes, then dies before the relay can mark the records as sent."""

    async def publish(self, records):  # type: ignore[no-untyped-def]
        await super().publish(records)
        raise RuntimeError("killed between publish and mark")


async def test_events_written_before_a_crash_are_sent_later_with_the_same_ids(world: World) -> None:
    await world.model()
    number = await world.version()
    await world.h.promote(TRAINER, PromoteModelVersion("fraud", number, "champion"))
    outbox = world.registry.relay._source  # type: ignore[union-attr]
    assert isinstance(outbox, MemoryOutbox)
    stored = [r.event_id for r in outbox.pending()]
    crashing = CrashAfterPublish()
    with pytest.raises(RuntimeError):
        await OutboxRelay(outbox, crashing).relay_once()
    assert [r.event_id for r in outbox.pending()] == stored
    assert await world.relay() == ["ModelVersionRegistered", "ModelVersionPromoted"]
    assert [r.event_id for r in world.publisher.published] == stored == [r.event_id for r in crashing.published]
    assert outbox.pending() == [] and await world.relay() == ["ModelVersionRegistered", "ModelVersionPromoted"]


async def test_relay_loop_retries_a_broker_outage_and_is_woken_by_commits(world: World) -> None:
    world.publisher.fail_next = 2
    assert world.registry.relay is not None
    task = asyncio.create_task(world.registry.relay.run())
    try:
        await world.model()
        await world.version()
        async with asyncio.timeout(5):
            while not world.publisher.published:
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
    assert [r.subject for r in world.publisher.published] == ["fraud/1"]


async def test_a_broker_outage_raises_unavailable_and_keeps_records(world: World) -> None:
    world.publisher.fail_next = 1
    await world.model()
    await world.version()
    with pytest.raises(Unavailable):
        await world.relay()
    assert await world.relay() == ["ModelVersionRegistered"]
