"""Readiness: named async checks of what a service needs (PostgreSQL, Kafka, Triton...)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

Check = Callable[[], Awaitable[None]]


class Readiness:
    """A service is ready when it has started, is not draining and every check passes."""

    def __init__(self, timeout_s: float = 2.0) -> None:
        self._checks: dict[str, Check] = {}
        self._timeout_s = timeout_s
        self.started = False
        self.draining = False

    def add(self, name: str, check: Check) -> None:
        self._checks[name] = check

    async def _run(self, check: Check) -> str:
        try:
            await asyncio.wait_for(check(), self._timeout_s)
        except TimeoutError:
            return f"timed out after {self._timeout_s:.1f}s"
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready", with its reason
            return f"{type(exc).__name__}: {exc}"
        return "ok"

    async def evaluate(self) -> tuple[bool, dict[str, str]]:
        names = list(self._checks)
        results = await asyncio.gather(*(self._run(self._checks[n]) for n in names))
        report = dict(zip(names, results, strict=True))
        if not self.started:
            report["startup"] = "starting"
        if self.draining:
            report["shutdown"] = "draining"
        ok = self.started and not self.draining and all(r == "ok" for r in results)
        return ok, report
