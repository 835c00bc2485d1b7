"""Rolling a model back: champion alias and live traffic return to an earlier champion."""

from __future__ import annotations

from dataclasses import replace

from loopline_core.errors import FailedPrecondition

from loopline_registry.domain.auth import Caller, Role, require
from loopline_registry.domain.deployment import Deployment, TrafficSplit, Variant
from loopline_registry.domain.events import DeploymentChanged, RolledBack
from loopline_registry.domain.model import CHAMPION
from loopline_registry.domain.names import required_reason
from loopline_registry.domain.version import ModelVersion
from loopline_registry.service.commands import RollBack
from loopline_registry.service.common import audit, emit, load_model
from loopline_registry.service.deployments import splits_view
from loopline_registry.service.deps import Deps
from loopline_registry.service.gating import verify_artifact
from loopline_registry.service.ports import AliasMove
from loopline_registry.service.promotion import crown, rollback_target


async def rollback(deps: Deps, caller: Caller, cmd: RollBack) -> tuple[ModelVersion, Deployment | None]:
    require(caller, Role.OPERATOR, "rolling back a model")
    reason = required_reason(cmd.reason, "roll back")
    async with deps.uow() as uow:
        model = await load_model(uow, cmd.model, for_update=True)
        current = model.aliases.get(CHAMPION)
        if not current:
            raise FailedPrecondition(f"{model.name} has no champion to roll back from", field="model")
        target = await rollback_target(uow, model.name, current, cmd.to_version)
        await verify_artifact(deps, target)
        at = deps.clock()
        await uow.aliases.move(AliasMove(model.name, CHAMPION, target.version, current, at, caller.actor, reason,
                                         gate_overridden=False, rollback=True))
        target = await crown(uow, target, current)
        deployment = await uow.deployments.get(model.name, for_update=True)
        changed = None
        if deployment is not None and not deployment.retired:  # a retired model stays out of service
            # the fallback stays what it was unless it now serves: never the version rolled back from
            kept = deployment.fallback_version if deployment.fallback_version not in (target.version, current) else 0
            changed = replace(deployment, revision=deployment.revision + 1, updated_at=at, updated_by=caller.actor,
                              splits=(TrafficSplit(target.version, 1.0, Variant.CHAMPION),), reason=reason,
                              shadow_versions=tuple(v for v in deployment.shadow_versions if v != target.version),
                              fallback_version=kept)
            await uow.deployments.save(changed, traceparent=caller.traceparent)
            await emit(uow, deps, caller, DeploymentChanged(model.name, changed.revision, changed.splits,
                                                            changed.shadow_versions, caller.actor, reason, at))
        await audit(uow, deps, caller, "model.rolled_back", f"models/{model.name}", model=model.name,
                    before={"champion": current, **({"deployment": splits_view(deployment)} if deployment else {})},
                    after={"champion": target.version, **({"deployment": splits_view(changed)} if changed else {})},
                    reason=reason)
        await emit(uow, deps, caller, RolledBack(model.name, current, target.version, reason, caller.actor, at))
        await uow.commit()
    return target, changed
