"""Alias moves behind the promotion gate, and rollbacks of the champion."""

from __future__ import annotations

from loopline_core.errors import FailedPrecondition

from loopline_registry.domain.auth import Caller, Role, require
from loopline_registry.domain.events import VersionPromoted
from loopline_registry.domain.model import CHAMPION
from loopline_registry.domain.names import check_alias, check_positive, check_text
from loopline_registry.domain.version import ModelVersion, VersionStatus, check_usable, transition
from loopline_registry.service.commands import PromoteModelVersion
from loopline_registry.service.common import audit, emit, load_model, load_version
from loopline_registry.service.deps import Deps
from loopline_registry.service.gating import check_override, enforce, verify_artifact
from loopline_registry.service.ports import AliasMove, UnitOfWork


async def crown(uow: UnitOfWork, new: ModelVersion, previous: int | None) -> ModelVersion:
    """Statuses follow the champion: the new one is production, the old one back to staged."""
    if previous and previous != new.version:
        old = await load_version(uow, new.model, previous)
        if old.status == VersionStatus.PRODUCTION:
            await uow.versions.set_status(new.model, previous, VersionStatus.STAGED)
    crowned = transition(new, VersionStatus.PRODUCTION)
    if crowned is not new:
        await uow.versions.set_status(new.model, new.version, VersionStatus.PRODUCTION)
    return crowned


async def promote(deps: Deps, caller: Caller, cmd: PromoteModelVersion) -> ModelVersion:
    require(caller, Role.TRAINER, "moving an alias")
    reason = check_text(cmd.reason, "reason", 1024)
    check_override(caller, cmd.override_gate, reason)
    alias = check_alias(cmd.alias)
    async with deps.uow() as uow:
        model = await load_model(uow, cmd.model, for_update=True)
        version = await load_version(uow, model.name, check_positive(cmd.version, "version"))
        check_usable(version, "promoted")
        previous = model.aliases.get(alias)
        if previous == version.version:
            return version
        overridden, gate_reason = False, "alias is not gated"
        if alias in deps.gated_aliases:
            decision, overridden = await enforce(uow, deps, model, version, previous, override=cmd.override_gate)
            gate_reason = decision.reason
        await verify_artifact(deps, version)
        at = deps.clock()
        await uow.aliases.move(AliasMove(model.name, alias, version.version, previous or 0, at, caller.actor,
                                         reason, overridden))
        if alias == CHAMPION:
            version = await crown(uow, version, previous)
        await audit(uow, deps, caller, "alias.moved", f"models/{model.name}/aliases/{alias}", model=model.name,
                    before={"version": previous}, reason=reason,
                    after={"version": version.version, "gate": gate_reason, "gate_overridden": overridden})
        await emit(uow, deps, caller, VersionPromoted(model.name, version.version, alias, previous or 0,
                                                      caller.actor, reason, overridden, at))
        await uow.commit()
    return version


async def rollback_target(uow: UnitOfWork, model: str, current: int, to_version: int) -> ModelVersion:
    """The champion to go back to: the latest earlier champion not itself rolled back from."""
    moves = await uow.aliases.history(model, CHAMPION)
    rolled_from = {m.previous_version for m in moves if m.rollback}
    earlier = [m.previous_version for m in reversed(moves)
               if m.previous_version and m.previous_version != current and m.previous_version not in rolled_from]
    if to_version:
        if to_version not in {m.version for m in moves} or to_version == current:
            raise FailedPrecondition(f"version {to_version} was never an earlier champion of {model}; "
                                     "promote it with the gate instead", field="to_version")
        earlier = [to_version]
    for number in earlier:
        candidate = await load_version(uow, model, number)
        if candidate.status != VersionStatus.ARCHIVED:
            return candidate
    raise FailedPrecondition(f"{model} has no earlier champion to roll back to", field="model")
