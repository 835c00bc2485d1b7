"""The bounded live scenario: replay a source through the gateway at a fixed rate, label later, watch the loop.

The runner is independent of how the platform is observed: ``Watcher``
answers whether drift has been detected and which version is champion at
100%; the demo binds it to the registry and the event topics, tests to fakes.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from loopline_cli.loop.report import Outcome
from loopline_cli.loop.sources import Record
from loopline_cli.loop.traffic import Answer, GatewayError, LabelQueue


class Gateway(Protocol):
    async def infer_grpc(self, record: Record) -> Answer: ...

    async def infer_rest(self, record: Record) -> Answer: ...


class Feedback(Protocol):
    async def submit(self, prediction_id: str, record: Record) -> str: ...


class Watcher(Protocol):
    async def drift_detected(self) -> bool: ...

    async def champion_at_full(self) -> int | None: ...


@dataclass
class Run:
    outcomes: list[Outcome] = field(default_factory=list)
    change_s: float | None = None
    detected_s: float | None = None
    promoted_s: float | None = None
    new_champion: int | None = None
    errors: list[str] = field(default_factory=list)
    labels_sent: int = 0
    requests: int = 0
    #: time.monotonic() when the scenario began: the zero of every ``*_s`` above.
    began: float = 0.0


async def run_scenario(records: Iterable[Record], *, gateway: Gateway, feedback: Feedback, watcher: Watcher,
                       rate_hz: float, label_delay_s: float, change_at: int, initial_champion: int,
                       stop_after_recovery_s: float = 10.0, max_seconds: float = 300.0, watch_s: float = 0.5) -> Run:
    """Sends records at ``rate_hz`` (gRPC and REST alternately) until the source ends, the time is up, or
    ``stop_after_recovery_s`` after a new champion reached 100%."""
    if rate_hz <= 0:
        raise ValueError(f"rate_hz must be positive, got {rate_hz}")
    run, queue = Run(), LabelQueue(label_delay_s)
    began = run.began = time.monotonic()
    period = 1.0 / rate_hz
    protocols = itertools.cycle(("grpc", "rest"))

    async def watch() -> None:
        while True:
            now = time.monotonic() - began
            if run.change_s is not None and run.detected_s is None and await watcher.drift_detected():
                run.detected_s = now
            champion = await watcher.champion_at_full()
            if run.change_s is not None and champion is not None and champion != initial_champion \
                    and run.promoted_s is None:
                run.promoted_s, run.new_champion = now, champion
            await asyncio.sleep(watch_s)

    async def label(pid: str, record: Record, answer: Answer, at_s: float) -> None:
        try:
            await feedback.submit(pid, record)
            run.labels_sent += 1
        except Exception as exc:  # noqa: BLE001 - a lost label is reported, the scenario goes on
            run.errors.append(f"label for {pid}: {exc}")
        run.outcomes.append(Outcome(at_s, answer.predicted == record.label, answer.version))

    watcher_task = asyncio.create_task(watch())
    pending: dict[str, tuple[Answer, float]] = {}
    try:
        for i, record in enumerate(records):
            now = time.monotonic() - began
            if now > max_seconds or (run.promoted_s is not None and now > run.promoted_s + stop_after_recovery_s):
                break
            if i == change_at:
                run.change_s = now
            run.requests += 1
            try:
                answer = await (gateway.infer_grpc(record) if next(protocols) == "grpc"
                                else gateway.infer_rest(record))
            except GatewayError as exc:
                run.errors.append(str(exc))
            else:
                if answer.prediction_id:
                    pending[answer.prediction_id] = (answer, now)
                    queue.add(answer.prediction_id, record)
                else:
                    run.errors.append(f"gateway answer without a prediction id ({answer.protocol})")
            for pid, rec in queue.due():
                answer, at_s = pending.pop(pid)
                await label(pid, rec, answer, at_s)
            await asyncio.sleep(max(0.0, began + (i + 1) * period - time.monotonic()))
    finally:
        watcher_task.cancel()
        await asyncio.gather(watcher_task, return_exceptions=True)
    return run
