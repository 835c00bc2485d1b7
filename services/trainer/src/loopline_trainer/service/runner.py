"""The service layer: accepts run requests (idempotent per request id), runs them one
model at a time, and keeps their state and events in step."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace

from loopline_core.errors import InvalidArgument, LooplineError, NotFound

from loopline_trainer.domain.runs import Run, RunRequest, RunStatus, run_id_for
from loopline_trainer.service.pipeline import Deps, train
from loopline_trainer.service.ports import RunStore

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("loopline.trainer")


def _current_traceparent() -> str:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent", "")


class Trainer:
    def __init__(self, deps: Deps, store: RunStore, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._deps = deps
        self._store = store
        self._clock = clock
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def submit(self, request: RunRequest) -> Run:
        """The run of this request: created and queued the first time, returned as it is after."""
        if not request.model.strip():
            raise InvalidArgument("a model name is required", field="model")
        if not request.request_id.strip():
            raise InvalidArgument("a request id is required (it makes the request idempotent)", field="request_id")
        if not request.traceparent:
            request = RunRequest(**{**request.__dict__, "traceparent": _current_traceparent()})
        run = await self._store.add(Run(run_id_for(request.model, request.request_id), request))
        if run.status in (RunStatus.QUEUED, RunStatus.RUNNING):
            self._schedule(run, otel_context.get_current())
        return run

    async def get(self, run_id: str) -> Run:
        run = await self._store.get(run_id)
        if run is None:
            raise NotFound(f"training run {run_id!r} does not exist", field="run_id")
        return run

    async def resume(self) -> None:
        """Runs a previous process accepted but did not finish, in their original traces."""
        for run in await self._store.unfinished():
            self._schedule(run, propagate.extract({"traceparent": run.request.traceparent}))

    async def idle(self) -> None:
        """Waits until every scheduled run has finished (tests, shutdown)."""
        while pending := [t for t in self._tasks.values() if not t.done()]:
            await asyncio.wait(pending)

    async def stop(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    def _schedule(self, run: Run, parent: otel_context.Context) -> None:
        if run.run_id in self._tasks and not self._tasks[run.run_id].done():
            return
        token = otel_context.attach(parent)
        try:
            self._tasks[run.run_id] = asyncio.create_task(self._execute(run.run_id), name=run.run_id)
        finally:
            otel_context.detach(token)

    async def _execute(self, run_id: str) -> None:
        run = await self.get(run_id)
        async with self._locks[run.model]:
            with _tracer.start_as_current_span(f"train {run.model}", attributes={
                    "loopline.run_id": run.run_id, "loopline.model": run.model,
                    "loopline.request_id": run.request.request_id}):
                await self._attempt(run)

    async def _attempt(self, run: Run) -> None:
        run.status, run.started_at = RunStatus.RUNNING, self._clock()
        await self._store.save(run)
        try:
            await train(self._deps, run)
        except asyncio.CancelledError:
            raise  # left RUNNING: the next process resumes it
        except Exception as exc:  # noqa: BLE001 - any failure ends the run, with its reason
            run.status, run.error = RunStatus.FAILED, str(exc) if isinstance(exc, LooplineError) else repr(exc)
            run.finished_at = self._clock()
            log.warning("training run %s of %s failed: %s", run.run_id, run.model, run.error)
            await self._store.save(run)
            await self._report_failure(run)
            return
        run.status, run.finished_at = RunStatus.COMPLETED, self._clock()
        await self._store.save(run)
        await self._deps.events.completed(run)

    async def _report_failure(self, run: Run) -> None:
        try:
            await self._deps.registry.finish_run(run.run_id, False, run.error)
        except LooplineError as exc:  # the run may never have reached the registry
            log.info("could not mark run %s failed in the registry: %s", run.run_id, exc)
        await self._deps.events.failed(run)
