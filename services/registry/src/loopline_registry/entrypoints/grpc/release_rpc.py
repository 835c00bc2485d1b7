"""RPCs of promotion, deployments, rollback, audit and "what served when"."""

from __future__ import annotations

import grpc
from loopline.registry.v1 import registry_pb2 as pb
from loopline_core.errors import InvalidArgument

from loopline_registry.entrypoints.grpc import convert as c
from loopline_registry.entrypoints.grpc.base import RpcBase, page_of
from loopline_registry.service import commands as cmd
from loopline_registry.service.queries import AuditFilter

Ctx = grpc.aio.ServicerContext


class ReleaseRpc(RpcBase):
    async def PromoteModelVersion(self, r: pb.PromoteModelVersionRequest, context: Ctx) -> pb.ModelVersion:
        version = await self.h.promote(await self.caller(context), cmd.PromoteModelVersion(
            r.model, r.version, r.alias, r.reason, r.override_gate))
        return c.version_pb(version)

    async def GetDeployment(self, r: pb.GetDeploymentRequest, context: Ctx) -> pb.Deployment:
        return c.deployment_pb(await self.h.get_deployment(await self.caller(context), r.model))

    async def ListDeployments(self, r: pb.ListDeploymentsRequest, context: Ctx) -> pb.ListDeploymentsResponse:
        found = await self.h.list_deployments(await self.caller(context))
        return pb.ListDeploymentsResponse(deployments=[c.deployment_pb(d) for d in found])

    async def SetDeployment(self, r: pb.SetDeploymentRequest, context: Ctx) -> pb.Deployment:
        caller = await self.caller(context)
        deployment = await self.h.set_deployment(caller, cmd.SetDeployment(
            r.model, r.expected_revision, c.splits_of(r), tuple(r.shadow_versions), r.reason, r.override_gate))
        return c.deployment_pb(deployment)

    async def RetireDeployment(self, r: pb.RetireDeploymentRequest, context: Ctx) -> pb.Deployment:
        deployment = await self.h.retire_deployment(await self.caller(context), cmd.RetireDeployment(
            r.model, r.expected_revision, r.reason))
        return c.deployment_pb(deployment)

    async def RollBack(self, r: pb.RollBackRequest, context: Ctx) -> pb.RollBackResponse:
        champion, deployment = await self.h.rollback(await self.caller(context),
                                                     cmd.RollBack(r.model, r.reason, r.to_version))
        return pb.RollBackResponse(champion=c.version_pb(champion),
                                   deployment=c.deployment_pb(deployment) if deployment else None)

    async def ListAuditEntries(self, r: pb.ListAuditEntriesRequest, context: Ctx) -> pb.ListAuditEntriesResponse:
        query = AuditFilter(r.model, r.action, c.moment(r.since, r.HasField("since")),
                            c.moment(r.until, r.HasField("until")))
        found, token = await self.h.list_audit(await self.caller(context), query, page_of(r.page))
        return pb.ListAuditEntriesResponse(entries=[c.audit_pb(e) for e in found], next_page_token=token)

    async def GetServedAt(self, r: pb.GetServedAtRequest, context: Ctx) -> pb.ServedAt:
        if not r.HasField("at"):
            raise InvalidArgument("at is required", field="at")
        served = await self.h.served_at(await self.caller(context), r.model, c.moment(r.at, True))
        return c.served_pb(served)
