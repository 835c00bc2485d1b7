"""Handlers for datasets and dataset versions."""

from __future__ import annotations

from loopline_core.errors import AlreadyExists, NotFound

from loopline_registry.domain.auth import Caller, Role, require
from loopline_registry.domain.datasets import Dataset, DatasetVersion, new_dataset, new_dataset_version
from loopline_registry.domain.names import check_name, check_positive
from loopline_registry.service.commands import CreateDataset, CreateDatasetVersion
from loopline_registry.service.common import audit
from loopline_registry.service.deps import Deps
from loopline_registry.service.idempotency import Idempotency
from loopline_registry.service.ports import UnitOfWork


async def _load(uow: UnitOfWork, name: str, *, for_update: bool = False) -> Dataset:
    found = await uow.datasets.get(check_name(name, "dataset"), for_update=for_update)
    if found is None:
        raise NotFound(f"dataset {name!r} does not exist", field="dataset")
    return found


async def load_dataset_version(uow: UnitOfWork, name: str, version: int) -> DatasetVersion:
    found = await uow.datasets.get_version(check_name(name, "dataset"), check_positive(version, "version"))
    if found is None:
        raise NotFound(f"dataset {name!r} has no version {version}", field="version")
    return found


async def create_dataset(deps: Deps, caller: Caller, cmd: CreateDataset) -> Dataset:
    require(caller, Role.TRAINER, "creating a dataset")
    dataset = new_dataset(cmd.name, cmd.description, at=deps.clock(), actor=caller.actor)
    once = Idempotency("create_dataset", caller, cmd.idempotency_key, cmd)
    async with deps.uow() as uow:
        if (previous := await once.previous(uow)) is not None:
            return await _load(uow, previous)
        if await uow.datasets.get(dataset.name) is not None:
            raise AlreadyExists(f"dataset {dataset.name!r} already exists", field="name")
        await uow.datasets.add(dataset)
        await audit(uow, deps, caller, "dataset.created", f"datasets/{dataset.name}",
                    after={"description": dataset.description})
        await once.remember(uow, dataset.name, deps.clock())
        await uow.commit()
    return dataset


async def create_dataset_version(deps: Deps, caller: Caller, cmd: CreateDatasetVersion) -> DatasetVersion:
    require(caller, Role.TRAINER, "creating a dataset version")
    new_dataset_version(cmd.dataset, 1, cmd.content_sha256, cmd.row_count, cmd.window_start, cmd.window_end,
                        cmd.query, at=deps.clock(), actor=caller.actor)  # validate before any I/O
    once = Idempotency("create_dataset_version", caller, cmd.idempotency_key, cmd)
    async with deps.uow() as uow:
        if (previous := await once.previous(uow)) is not None:
            return await load_dataset_version(uow, cmd.dataset, int(previous))
        dataset = await _load(uow, cmd.dataset, for_update=True)
        version = new_dataset_version(
            dataset.name, await uow.datasets.next_version(dataset.name), cmd.content_sha256, cmd.row_count,
            cmd.window_start, cmd.window_end, cmd.query, at=deps.clock(), actor=caller.actor)
        await uow.datasets.add_version(version)
        await audit(uow, deps, caller, "dataset.version_created", f"datasets/{dataset.name}/versions/{version.version}",
                    after={"content_sha256": version.content_sha256, "row_count": version.row_count})
        await once.remember(uow, str(version.version), deps.clock())
        await uow.commit()
    return version


async def get_dataset_version(deps: Deps, caller: Caller, name: str, version: int) -> DatasetVersion:
    require(caller, Role.READER, "reading datasets")
    async with deps.uow(readonly=True) as uow:
        return await load_dataset_version(uow, name, version)


async def list_dataset_versions(deps: Deps, caller: Caller, name: str) -> list[DatasetVersion]:
    require(caller, Role.READER, "reading datasets")
    async with deps.uow(readonly=True) as uow:
        await _load(uow, name)
        return await uow.datasets.list_versions(name)
