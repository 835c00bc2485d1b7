"""Handlers for registered models."""

from __future__ import annotations

from loopline_core.errors import AlreadyExists

from loopline_registry.domain.auth import Caller, Role, require
from loopline_registry.domain.model import RegisteredModel, new_model
from loopline_registry.service.commands import CreateModel
from loopline_registry.service.common import audit, load_model
from loopline_registry.service.deps import Deps
from loopline_registry.service.idempotency import Idempotency
from loopline_registry.service.queries import Page, decode_token, encode_token


async def create_model(deps: Deps, caller: Caller, cmd: CreateModel) -> RegisteredModel:
    require(caller, Role.TRAINER, "creating a model")
    model = new_model(cmd.name, cmd.description, cmd.task, cmd.tags, at=deps.clock(), actor=caller.actor,
                      gate=cmd.gate)
    once = Idempotency("create_model", caller, cmd.idempotency_key, cmd)
    async with deps.uow() as uow:
        if (previous := await once.previous(uow)) is not None:
            return await load_model(uow, previous)
        if await uow.models.get(model.name) is not None:
            raise AlreadyExists(f"model {model.name!r} already exists", field="name")
        await uow.models.add(model)
        await audit(uow, deps, caller, "model.created", f"models/{model.name}", model=model.name,
                    after={"description": model.description, "task": model.task, "tags": dict(model.tags)})
        await once.remember(uow, model.name, deps.clock())
        await uow.commit()
    return model


async def get_model(deps: Deps, caller: Caller, name: str) -> RegisteredModel:
    require(caller, Role.READER, "reading models")
    async with deps.uow(readonly=True) as uow:
        return await load_model(uow, name)


async def list_models(deps: Deps, caller: Caller, page: Page, name_prefix: str = "") -> tuple[
        list[RegisteredModel], str]:
    require(caller, Role.READER, "listing models")
    limit = page.limit
    async with deps.uow(readonly=True) as uow:
        found = await uow.models.list(after=decode_token(page.token), limit=limit + 1, name_prefix=name_prefix)
    more = len(found) > limit
    found = found[:limit]
    return found, encode_token(found[-1].name) if more else ""
