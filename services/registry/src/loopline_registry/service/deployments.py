"""Deployments: the desired traffic split, changed under optimistic concurrency."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from loopline_core.errors import NotFound

from loopline_registry.domain.auth import Caller, Role, require
from loopline_registry.domain.deployment import Deployment, plan, retire
from loopline_registry.domain.events import DeploymentChanged
from loopline_registry.domain.model import CHAMPION
from loopline_registry.domain.names import check_name, check_text, required_reason
from loopline_registry.domain.version import check_usable
from loopline_registry.service.commands import RetireDeployment, SetDeployment
from loopline_registry.service.common import audit, emit, load_model, load_version
from loopline_registry.service.deps import Deps
from loopline_registry.service.ports import UnitOfWork
from loopline_registry.service.gating import check_override, enforce, verify_artifact


def splits_view(deployment: Deployment | None) -> dict[str, Any] | None:
    if deployment is None:
        return None
    return {"revision": deployment.revision, "shadow_versions": list(deployment.shadow_versions),
            "splits": [{"version": s.version, "weight": s.weight, "variant": s.variant.value}
                       for s in deployment.splits], "fallback_version": deployment.fallback_version}


async def set_deployment(deps: Deps, caller: Caller, cmd: SetDeployment) -> Deployment:
    """Live traffic for any version but the champion needs the gate (or an operator's override)."""
    require(caller, Role.TRAINER, "changing a deployment")
    reason = check_text(cmd.reason, "reason", 1024)
    check_override(caller, cmd.override_gate, reason)
    async with deps.uow() as uow:
        model = await load_model(uow, cmd.model, for_update=True)
        current = await uow.deployments.get(model.name, for_update=True)
        new = plan(current, model.name, cmd.expected_revision, cmd.splits, cmd.shadow_versions,
                   at=deps.clock(), actor=caller.actor, reason=reason)
        champion = model.aliases.get(CHAMPION)
        overridden: list[int] = []
        for number in (*(s.version for s in new.splits), *new.shadow_versions):
            version = await load_version(uow, model.name, number)
            check_usable(version, "deployed")
            if number in new.live_versions() and number != champion:
                _, needed = await enforce(uow, deps, model, version, champion, override=cmd.override_gate)
                overridden += [number] if needed else []
            await verify_artifact(deps, version)
        await uow.deployments.save(new, traceparent=caller.traceparent)
        await audit(uow, deps, caller, "deployment.changed", f"models/{model.name}/deployment", model=model.name,
                    before=splits_view(current), after={**(splits_view(new) or {}), "gate_overridden": overridden},
                    reason=reason)
        await emit(uow, deps, caller, DeploymentChanged(model.name, new.revision, new.splits, new.shadow_versions,
                                                        caller.actor, reason, new.updated_at))
        await uow.commit()
    return new


async def retire_deployment(deps: Deps, caller: Caller, cmd: RetireDeployment) -> Deployment:
    """Takes a model out of service: gateways stop routing to it and unload its versions once
    their requests have drained. Its versions, aliases and history stay; ``set_deployment``
    serves it again. An operator's act, with a reason (it stops live traffic)."""
    require(caller, Role.OPERATOR, "retiring a deployment")
    reason = required_reason(cmd.reason, "retire a deployment")
    async with deps.uow() as uow:
        model = await load_model(uow, cmd.model, for_update=True)
        current = await uow.deployments.get(model.name, for_update=True)
        new = retire(current, model.name, cmd.expected_revision, at=deps.clock(), actor=caller.actor, reason=reason)
        await uow.deployments.save(new, traceparent=caller.traceparent)
        await audit(uow, deps, caller, "deployment.retired", f"models/{model.name}/deployment", model=model.name,
                    before=splits_view(current), after=splits_view(new), reason=reason)
        await emit(uow, deps, caller, DeploymentChanged(model.name, new.revision, (), (), caller.actor, reason,
                                                        new.updated_at))
        await uow.commit()
    return new


async def drop_fallback(uow: UnitOfWork, deps: Deps, caller: Caller, model: str, version: int, reason: str) -> None:
    """``version`` of ``model`` is being archived: if it is the deployment's fallback, the
    deployment's next revision has none (an archived version is never deployed, not even to
    answer for a failed one). Same transaction as the archiving."""
    current = await uow.deployments.get(model, for_update=True)
    if current is None or current.fallback_version != version:
        return
    new = replace(current, revision=current.revision + 1, updated_at=deps.clock(), updated_by=caller.actor,
                  reason=f"v{version} archived: no fallback" + (f" ({reason})" if reason else ""), fallback_version=0)
    await uow.deployments.save(new, traceparent=caller.traceparent)
    await audit(uow, deps, caller, "deployment.changed", f"models/{model}/deployment", model=model,
                before=splits_view(current), after=splits_view(new), reason=new.reason)
    await emit(uow, deps, caller, DeploymentChanged(model, new.revision, new.splits, new.shadow_versions,
                                                    caller.actor, new.reason, new.updated_at))


async def get_deployment(deps: Deps, caller: Caller, model: str) -> Deployment:
    require(caller, Role.READER, "reading deployments")
    async with deps.uow(readonly=True) as uow:
        found = await uow.deployments.get(check_name(model, "model"))
        if found is None:
            await load_model(uow, model)
            raise NotFound(f"model {model!r} has no deployment yet", field="model")
        return found


async def list_deployments(deps: Deps, caller: Caller) -> list[Deployment]:
    require(caller, Role.READER, "reading deployments")
    async with deps.uow(readonly=True) as uow:
        return await uow.deployments.list()


async def deployment_trace(deps: Deps, caller: Caller, model: str, revision: int) -> str:
    """The W3C traceparent of the request that made ``revision`` of the deployment ('' when none was recorded)."""
    require(caller, Role.READER, "reading deployments")
    async with deps.uow(readonly=True) as uow:
        return await uow.deployments.traceparent(check_name(model, "model"), revision)
