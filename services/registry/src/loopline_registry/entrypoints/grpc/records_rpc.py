"""RPCs of datasets, training runs, lineage and API keys."""

from __future__ import annotations

import grpc
from loopline.registry.v1 import registry_pb2 as pb
from loopline_core.errors import InvalidArgument

from loopline_registry.domain.runs import RunInput
from loopline_registry.entrypoints.grpc import convert as c
from loopline_registry.entrypoints.grpc.base import RpcBase
from loopline_registry.service import commands as cmd

Ctx = grpc.aio.ServicerContext


class RecordsRpc(RpcBase):
    async def CreateDataset(self, r: pb.CreateDatasetRequest, context: Ctx) -> pb.Dataset:
        d = await self.h.create_dataset(await self.caller(context),
                                        cmd.CreateDataset(r.name, r.description, r.idempotency_key))
        return pb.Dataset(name=d.name, description=d.description, created_at=c.ts(d.created_at),
                          created_by=d.created_by)

    async def CreateDatasetVersion(self, r: pb.CreateDatasetVersionRequest, context: Ctx) -> pb.DatasetVersion:
        window = r.window
        version = await self.h.create_dataset_version(await self.caller(context), cmd.CreateDatasetVersion(
            r.dataset, r.content_sha256, r.row_count, c.moment(window.start, window.HasField("start")),
            c.moment(window.end, window.HasField("end")), r.query, r.idempotency_key))
        return c.dataset_version_pb(version)

    async def GetDatasetVersion(self, r: pb.GetDatasetVersionRequest, context: Ctx) -> pb.DatasetVersion:
        return c.dataset_version_pb(await self.h.get_dataset_version(await self.caller(context), r.dataset, r.version))

    async def ListDatasetVersions(self, r: pb.ListDatasetVersionsRequest,
                                  context: Ctx) -> pb.ListDatasetVersionsResponse:
        found = await self.h.list_dataset_versions(await self.caller(context), r.dataset)
        return pb.ListDatasetVersionsResponse(versions=[c.dataset_version_pb(v) for v in found])

    async def CreateTrainingRun(self, r: pb.CreateTrainingRunRequest, context: Ctx) -> pb.TrainingRun:
        inputs = tuple(RunInput(i.dataset, i.version, i.role) for i in r.inputs)
        run = await self.h.start_run(await self.caller(context), cmd.StartRun(
            r.model, dict(r.params), r.code_version, dict(r.environment), inputs, r.idempotency_key, r.run_id))
        return c.run_pb(run)

    async def LogRunMetrics(self, r: pb.LogRunMetricsRequest, context: Ctx) -> pb.LogRunMetricsResponse:
        points = tuple((p.name, p.step, p.value) for p in r.points)
        await self.h.log_metrics(await self.caller(context), cmd.LogRunMetrics(r.run_id, points))
        return pb.LogRunMetricsResponse()

    async def FinishTrainingRun(self, r: pb.FinishTrainingRunRequest, context: Ctx) -> pb.TrainingRun:
        status = c.RUN_STATUS_OF.get(r.status)
        if status is None:
            raise InvalidArgument("status must be RUN_STATUS_COMPLETED or RUN_STATUS_FAILED", field="status")
        return c.run_pb(await self.h.finish_run(await self.caller(context), cmd.FinishRun(r.run_id, status, r.reason)))

    async def GetTrainingRun(self, r: pb.GetTrainingRunRequest, context: Ctx) -> pb.TrainingRun:
        return c.run_pb(await self.h.get_run(await self.caller(context), r.run_id))

    async def GetLineage(self, r: pb.GetLineageRequest, context: Ctx) -> pb.Lineage:
        lineage = await self.h.get_lineage(await self.caller(context), r.model, r.version)
        return pb.Lineage(version=c.version_pb(lineage.version), run=c.run_pb(lineage.run) if lineage.run else None,
                          inputs=[pb.LineageInput(role=i.role, dataset_version=c.dataset_version_pb(i.dataset_version))
                                  for i in lineage.inputs])

    async def CreateApiKey(self, r: pb.CreateApiKeyRequest, context: Ctx) -> pb.CreateApiKeyResponse:
        key, secret = await self.h.create_api_key(await self.caller(context), cmd.CreateApiKey(r.name, r.role))
        return pb.CreateApiKeyResponse(name=key.name, role=key.role.label, secret=secret)

    async def RevokeApiKey(self, r: pb.RevokeApiKeyRequest, context: Ctx) -> pb.RevokeApiKeyResponse:
        await self.h.revoke_api_key(await self.caller(context), r.name)
        return pb.RevokeApiKeyResponse()
