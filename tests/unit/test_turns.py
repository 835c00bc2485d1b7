"""Background work cut into turns by the clock (loopline_core.turns)."""

from __future__ import annotations

import asyncio
import time

from loopline_core.turns import Turns


async def test_a_turn_is_over_once_its_time_is_used_and_next_begins_a_new_one() -> None:
    turns = Turns(0.005)
    assert not turns.over()
    time.sleep(0.006)
    assert turns.over()
    await turns.next()
    assert not turns.over()


async def test_next_lets_the_loop_run_what_is_ready() -> None:
    ran: list[str] = []
    asyncio.get_running_loop().call_soon(ran.append, "ready callback")
    await Turns(0.0).next()
    assert ran == ["ready callback"]
