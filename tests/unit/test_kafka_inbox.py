"""The in-memory inbox: once per consumer and event, and only when the work succeeded."""

from __future__ import annotations

import asyncio

import pytest

from loopline_core.kafka.inbox import InMemoryInbox, MemoryTransaction


async def test_the_first_claim_gets_a_transaction_and_later_ones_get_none() -> None:
    inbox = InMemoryInbox()
    async with inbox.claim("c", "e-1") as tx:
        assert isinstance(tx, MemoryTransaction)
    async with inbox.claim("c", "e-1") as again:
        assert again is None
    assert await inbox.seen("c", "e-1")


async def test_consumers_are_independent() -> None:
    inbox = InMemoryInbox()
    async with inbox.claim("c", "e-1"):
        pass
    async with inbox.claim("other", "e-1") as tx:
        assert tx is not None
    assert not await inbox.seen("c", "e-2")


async def test_a_failure_leaves_neither_mark_nor_effects() -> None:
    inbox = InMemoryInbox()
    effects: list[str] = []
    with pytest.raises(RuntimeError):
        async with inbox.claim("c", "e-1") as tx:
            assert tx is not None
            tx.on_commit(lambda: effects.append("written"))
            raise RuntimeError("handler failed")
    assert effects == [] and not await inbox.seen("c", "e-1")
    async with inbox.claim("c", "e-1") as tx:
        assert tx is not None
        tx.on_commit(lambda: effects.append("written"))
    assert effects == ["written"]


async def test_concurrent_claims_of_one_event_run_the_work_once() -> None:
    inbox = InMemoryInbox()
    runs = 0

    async def work() -> None:
        nonlocal runs
        async with inbox.claim("c", "e-1") as tx:
            if tx is not None:
                await asyncio.sleep(0)
                runs += 1

    await asyncio.gather(*(work() for _ in range(5)))
    assert runs == 1
