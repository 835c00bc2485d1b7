"""Handlers for training runs and the lineage they give model versions."""

from __future__ import annotations

from dataclasses import replace

from loopline_core.errors import AlreadyExists, NotFound

from loopline_registry.domain.auth import Caller, Role, require
from loopline_registry.domain.lineage import Lineage, LineageInput
from loopline_registry.domain.names import check_key, check_labels, check_name, check_positive, check_text
from loopline_registry.domain.runs import MetricPoint, RunStatus, TrainingRun, check_inputs, check_points, finish
from loopline_registry.service.commands import FinishRun, LogRunMetrics, StartRun
from loopline_registry.service.common import audit, load_model, load_version
from loopline_registry.service.datasets import load_dataset_version
from loopline_registry.service.deps import Deps
from loopline_registry.service.idempotency import Idempotency
from loopline_registry.service.ports import UnitOfWork


async def _load(uow: UnitOfWork, run_id: str, *, for_update: bool = False) -> TrainingRun:
    found = await uow.runs.get(check_text(run_id, "run_id", 64), for_update=for_update)
    if found is None:
        raise NotFound(f"training run {run_id!r} does not exist", field="run_id")
    return found


async def start_run(deps: Deps, caller: Caller, cmd: StartRun) -> TrainingRun:
    require(caller, Role.TRAINER, "starting a training run")
    inputs = check_inputs(tuple(replace(i, dataset=check_name(i.dataset, "inputs.dataset")) for i in cmd.inputs))
    once = Idempotency("start_run", caller, cmd.idempotency_key, cmd)
    async with deps.uow() as uow:
        if (previous := await once.previous(uow)) is not None:
            return await _load(uow, previous)
        model = await load_model(uow, cmd.model)
        run_id = check_name(cmd.run_id, "run_id") if cmd.run_id else deps.new_id()
        if await uow.runs.get(run_id) is not None:
            raise AlreadyExists(f"training run {run_id!r} already exists", field="run_id")
        for item in inputs:
            await load_dataset_version(uow, item.dataset, item.version)
        run = TrainingRun(run_id, model.name, RunStatus.RUNNING, check_labels(cmd.params, "params", 256),
                          check_text(cmd.code_version, "code_version", 256),
                          check_labels(cmd.environment, "environment", 256), inputs, deps.clock(), caller.actor)
        await uow.runs.add(run)
        await audit(uow, deps, caller, "run.started", f"runs/{run.id}", model=model.name,
                    after={"inputs": [f"{i.dataset}/{i.version}:{i.role}" for i in inputs]})
        await once.remember(uow, run.id, deps.clock())
        await uow.commit()
    return run


async def log_metrics(deps: Deps, caller: Caller, cmd: LogRunMetrics) -> None:
    require(caller, Role.TRAINER, "logging run metrics")
    at = deps.clock()
    points = check_points(tuple(MetricPoint(check_key(n, "metrics"), s, v, at) for n, s, v in cmd.points))
    async with deps.uow() as uow:
        run = await _load(uow, cmd.run_id)
        await uow.runs.add_metrics(run.id, points)
        await audit(uow, deps, caller, "run.metrics_logged", f"runs/{run.id}", model=run.model,
                    after={"points": len(points), "names": sorted({p.name for p in points})})
        await uow.commit()


async def finish_run(deps: Deps, caller: Caller, cmd: FinishRun) -> TrainingRun:
    require(caller, Role.TRAINER, "finishing a training run")
    async with deps.uow() as uow:
        run = await _load(uow, cmd.run_id, for_update=True)
        done = finish(run, cmd.status, at=deps.clock(), reason=cmd.reason)
        await uow.runs.finish(done)
        await audit(uow, deps, caller, "run.finished", f"runs/{run.id}", model=run.model,
                    before={"status": run.status.value}, after={"status": done.status.value},
                    reason=done.failure_reason)
        await uow.commit()
    return done


async def get_run(deps: Deps, caller: Caller, run_id: str) -> TrainingRun:
    require(caller, Role.READER, "reading training runs")
    async with deps.uow(readonly=True) as uow:
        return await _load(uow, run_id)


async def get_lineage(deps: Deps, caller: Caller, model: str, version: int) -> Lineage:
    require(caller, Role.READER, "reading lineage")
    async with deps.uow(readonly=True) as uow:
        found = await load_version(uow, check_name(model, "model"), check_positive(version, "version"))
        run = await uow.runs.get(found.run_id) if found.run_id else None
        inputs = [LineageInput(i.role, await load_dataset_version(uow, i.dataset, i.version))
                  for i in (run.inputs if run else ())]
    return Lineage(found, run, tuple(inputs))
