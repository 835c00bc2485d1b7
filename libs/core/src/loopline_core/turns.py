"""Background work on the event loop in short turns, measured in time rather than in items.

A service's background loops (the gateway's prediction log, a producer's batch) share
the event loop with the requests it serves: a stretch of encoding that holds the loop
for a millisecond or two delays every request that arrives meanwhile, and that is
what a request's p99 sees. Counting items per stretch bounds the stretch only on a
warm machine: the same 16 entries took 0.3 ms in a loop of their own and 1-2 ms
between requests on a shared 2-core machine (cold caches), so the work is cut by the
clock instead. Checking it costs one ``perf_counter`` call per item (about 0.1 µs).

    turns = Turns()
    for item in items:
        work(item)
        if turns.over():
            await turns.next()
"""

from __future__ import annotations

import asyncio
from time import perf_counter

#: Longest stretch of background work before the event loop is let through (seconds).
TURN_S = 0.00025


class Turns:
    __slots__ = ("_budget", "_ends")

    def __init__(self, budget_s: float | None = None) -> None:
        self._budget = TURN_S if budget_s is None else budget_s
        self._ends = perf_counter() + self._budget

    def over(self) -> bool:
        """Whether this turn has used its time."""
        return perf_counter() >= self._ends

    async def next(self) -> None:
        """Let the event loop through (its ready callbacks and I/O run), then begin a new turn."""
        await asyncio.sleep(0)
        self._ends = perf_counter() + self._budget
