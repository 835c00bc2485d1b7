"""REST routes of deployments, rollback, audit and "what served when"."""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from loopline_registry.domain.auth import Caller
from loopline_registry.domain.deployment import TrafficSplit, Variant
from loopline_registry.entrypoints.http.catalog_schemas import VersionOut
from loopline_registry.entrypoints.http.release_schemas import (AuditOut, AuditPage, DeploymentIn, DeploymentOut,
                                                                RetireIn, RollbackIn, RollbackOut, ServedOut)
from loopline_registry.service import commands as cmd
from loopline_registry.service.handlers import Handlers
from loopline_registry.service.queries import AuditFilter, Page


def routes(h: Handlers, caller: Any) -> APIRouter:
    api = APIRouter(prefix="/v1", tags=["releases"])
    Who = Annotated[Caller, Depends(caller)]

    @api.get("/deployments")
    async def list_deployments(who: Who) -> list[DeploymentOut]:
        return [DeploymentOut.of(d) for d in await h.list_deployments(who)]

    @api.get("/models/{name}/deployment")
    async def get_deployment(name: str, who: Who) -> DeploymentOut:
        return DeploymentOut.of(await h.get_deployment(who, name))

    @api.put("/models/{name}/deployment")
    async def set_deployment(name: str, body: DeploymentIn, who: Who) -> DeploymentOut:
        """Replaces the traffic split if ``expected_revision`` is the current one (409 otherwise)."""
        splits = tuple(TrafficSplit(s.version, s.weight, Variant(s.variant)) for s in body.splits)
        deployment = await h.set_deployment(who, cmd.SetDeployment(
            name, body.expected_revision, splits, tuple(body.shadow_versions), body.reason, body.override_gate))
        return DeploymentOut.of(deployment)

    @api.post("/models/{name}/deployment/retire")
    async def retire_deployment(name: str, body: RetireIn, who: Who) -> DeploymentOut:
        """Takes the model out of service if ``expected_revision`` is the current one (409 otherwise):
        a new revision with no splits; PUT on the deployment serves it again."""
        return DeploymentOut.of(await h.retire_deployment(who, cmd.RetireDeployment(
            name, body.expected_revision, body.reason)))

    @api.post("/models/{name}/rollback")
    async def rollback(name: str, body: RollbackIn, who: Who) -> RollbackOut:
        champion, deployment = await h.rollback(who, cmd.RollBack(name, body.reason, body.to_version))
        return RollbackOut(champion=VersionOut.of(champion),
                           deployment=DeploymentOut.of(deployment) if deployment else None)

    @api.get("/models/{name}/served")
    async def served_at(name: str, at: datetime, who: Who) -> ServedOut:
        """Which versions answered live traffic for the model at ``at`` (ISO 8601 with offset)."""
        return ServedOut.of(await h.served_at(who, name, at))

    @api.get("/audit")
    async def list_audit(who: Who, model: str = "", action: str = "", since: datetime | None = None,
                         until: datetime | None = None, page_size: int = 0, page_token: str = "") -> AuditPage:
        found, token = await h.list_audit(who, AuditFilter(model, action, since, until), Page(page_size, page_token))
        return AuditPage(entries=[AuditOut.of(e) for e in found], next_page_token=token)

    return api
