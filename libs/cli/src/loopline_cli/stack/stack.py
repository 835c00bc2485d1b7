"""The local stack: bring parts up (infra first, then services), report, stop, inspect.

``up`` is idempotent: a part whose recorded process still runs is left alone
(and only re-checked). Parts of one phase start concurrently; each is timed
from preparation to readiness.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from loopline_cli.stack import procs
from loopline_cli.stack.component import Component
from loopline_cli.stack.config import StackConfig
from loopline_cli.stack.errors import PortInUse, StackError, StartFailed
from loopline_cli.stack.kafka import Kafka
from loopline_cli.stack.logs import tail
from loopline_cli.stack.ports import port_in_use
from loopline_cli.stack.postgres import Postgres
from loopline_cli.stack.readiness import Aborted, wait_until
from loopline_cli.stack.services import SERVICES, Service
from loopline_cli.stack.supervisor import Supervisor
from loopline_cli.stack.triton import Triton

PHASES = ("infra", "service")


@dataclass(frozen=True)
class PartResult:
    name: str
    #: "started", "running" (found already up), "failed" or "skipped".
    outcome: str
    seconds: float | None = None
    pid: int | None = None
    ports: dict[str, int] = field(default_factory=dict)
    error: StackError | None = None


@dataclass(frozen=True)
class PartStatus:
    name: str
    ports: dict[str, int]
    pid: int | None
    healthy: bool
    rss_mb: float | None = None
    #: With its descendants (PostgreSQL's backends, Triton's python backend stubs).
    tree_rss_mb: float | None = None


def default_components(config: StackConfig) -> list[Component]:
    infra: list[Component] = [Kafka(config), Postgres(config), Triton(config)]
    return infra + [Service(config, spec) for spec in SERVICES]


class Stack:
    def __init__(self, config: StackConfig, components: Sequence[Component] | None = None) -> None:
        self.config = config
        self.supervisor = Supervisor(config.layout)
        parts = list(components) if components is not None else default_components(config)
        self.parts: dict[str, Component] = {part.name: part for part in parts}

    def select(self, only: str = "all") -> list[Component]:
        """``all``, ``infra``, ``services``, or part names separated by commas."""
        if only in ("all", "infra", "services"):
            return [p for p in self.parts.values() if only == "all" or p.kind == only.removesuffix("s")]
        names = [name.strip() for name in only.split(",") if name.strip()]
        unknown = [name for name in names if name not in self.parts]
        if unknown:
            raise StackError(f"unknown part {', '.join(unknown)}; known: {', '.join(self.parts)}")
        return [self.parts[name] for name in self.parts if name in names]

    def preflight(self, parts: Sequence[Component]) -> None:
        """Before starting anything: every prerequisite present, every port free and distinct."""
        clashes = [port for port, n in Counter(self.config.ports.values()).items() if n > 1]
        if clashes:
            raise StackError(f"port {clashes[0]} is configured for more than one part")
        for part in parts:
            if self.supervisor.running(part.name) is not None:
                continue
            part.check_prerequisites()
            for key, port in part.ports().items():
                if port_in_use(port):
                    raise PortInUse(part.name, key, port)

    def up(self, only: str = "all", on_result: Callable[[PartResult], None] = lambda r: None) -> list[PartResult]:
        parts = self.select(only)
        self.config.layout.create()
        self.preflight(parts)
        self.config.save()
        results: list[PartResult] = []
        for phase in PHASES:
            batch = [part for part in parts if part.kind == phase]
            if not batch:
                continue
            if any(r.outcome == "failed" for r in results):
                skipped = [PartResult(p.name, "skipped", ports=p.ports()) for p in batch]
                results += skipped
                for result in skipped:
                    on_result(result)
                continue
            with ThreadPoolExecutor(max_workers=len(batch)) as pool:
                for result in pool.map(self._bring_up, batch):
                    on_result(result)
                    results.append(result)
        return results

    def ensure(self, name: str) -> PartResult:
        """Bring one part up (if needed) or raise; what the test fixtures use."""
        part = self.select(name)[0]
        self.config.layout.create()
        self.preflight([part])
        result = self._bring_up(part)
        if result.error is not None:
            raise result.error
        return result

    def _bring_up(self, part: Component) -> PartResult:
        began = time.monotonic()
        record = self.supervisor.running(part.name)
        outcome = "running" if record is not None else "started"
        try:
            if record is None:
                part.prepare()
                record = self.supervisor.spawn(part.name, part.launch(), part.ports())
            self._wait_ready(part, record.pid)
            part.after_ready()
        except Exception as error:  # noqa: BLE001 - whatever breaks one part is reported as that part's failure
            if outcome == "started":
                self.supervisor.stop(part.name)
            failure = error if isinstance(error, StartFailed) else None
            if failure is None:
                reason = str(error).removeprefix(f"{part.name}: ") or type(error).__name__
                failure = StartFailed(part.name, reason, self._log_tail(part))
            return PartResult(part.name, "failed", time.monotonic() - began, ports=part.ports(), error=failure)
        seconds = time.monotonic() - began if outcome == "started" else None
        return PartResult(part.name, outcome, seconds, record.pid, dict(record.ports))

    def _wait_ready(self, part: Component, pid: int) -> None:
        def exited() -> str | None:
            code = self.supervisor.exit_code(part.name)
            if code is not None:
                return f"exited with status {code} before it was ready"
            return None if procs.is_alive(pid) else "exited before it was ready"

        try:
            ready = wait_until(part.is_ready, part.start_timeout, abort=exited)
        except Aborted as aborted:
            raise StartFailed(part.name, str(aborted), self._log_tail(part)) from None
        if not ready:
            reason = f"not ready after {part.start_timeout:.0f}s"
            raise StartFailed(part.name, reason, self._log_tail(part))

    def _log_tail(self, part: Component) -> str:
        return tail(self.config.layout.log_file(part.name), 30)

    def down(self, only: str = "all") -> list[tuple[str, str]]:
        """Stop services, then infra, each phase concurrently; (name, outcome) per part.

        With ``all``, processes recorded under names this stack does not know
        (an older version's parts) are stopped with the services.
        """
        chosen = self.select(only)
        phases = [[p.name for p in reversed(chosen) if p.kind == phase] for phase in reversed(PHASES)]
        if only == "all":
            phases[0] += [name for name in self.supervisor.names() if name not in self.parts]
        stopped: list[tuple[str, str]] = []
        for names in phases:
            with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
                stopped += list(zip(names, pool.map(self.supervisor.stop, names), strict=True))
        return stopped

    def status(self, only: str = "all") -> list[PartStatus]:
        rows = []
        for part in self.select(only):
            record = self.supervisor.running(part.name)
            if record is None:
                rows.append(PartStatus(part.name, part.ports(), None, healthy=False))
                continue
            rows.append(
                PartStatus(
                    part.name,
                    dict(record.ports),
                    record.pid,
                    healthy=part.is_ready(),
                    rss_mb=procs.rss_mb(record.pid),
                    tree_rss_mb=procs.tree_rss_mb(record.pid),
                )
            )
        return rows
