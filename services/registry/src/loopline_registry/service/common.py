"""Small steps most handlers share: loading or failing with NotFound, auditing, emitting."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from loopline_core.errors import NotFound

from loopline_registry.domain.audit import entry
from loopline_registry.domain.auth import Caller
from loopline_registry.domain.events import Event
from loopline_registry.domain.model import RegisteredModel
from loopline_registry.domain.names import check_name
from loopline_registry.domain.version import ModelVersion
from loopline_registry.service.deps import Deps
from loopline_registry.service.ports import OutboxMessage, UnitOfWork


async def load_model(uow: UnitOfWork, name: str, *, for_update: bool = False) -> RegisteredModel:
    model = await uow.models.get(check_name(name, "model"), for_update=for_update)
    if model is None:
        raise NotFound(f"model {name!r} does not exist", field="model")
    return model


async def load_version(uow: UnitOfWork, model: str, version: int) -> ModelVersion:
    found = await uow.versions.get(model, version)
    if found is None:
        raise NotFound(f"model {model!r} has no version {version}", field="version")
    return found


async def audit(uow: UnitOfWork, deps: Deps, caller: Caller, action: str, target: str, *, model: str = "",
                before: Mapping[str, Any] | None = None, after: Mapping[str, Any] | None = None,
                reason: str = "") -> None:
    await uow.audit.append(entry(caller, action, target, at=deps.clock(), model=model, before=before,
                                 after=after, reason=reason))


async def emit(uow: UnitOfWork, deps: Deps, caller: Caller, event: Event) -> None:
    """Queue an event in the outbox, inside the change's own transaction."""
    await uow.outbox.add(OutboxMessage(deps.new_id(), event, caller.traceparent, deps.clock()))
