"""RPCs of models, artifacts and versions."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from loopline.registry.v1 import registry_pb2 as pb
from loopline_core.errors import InvalidArgument

from loopline_registry.entrypoints.grpc import convert as c
from loopline_registry.entrypoints.grpc.base import RpcBase, page_of
from loopline_registry.service import commands as cmd

Ctx = grpc.aio.ServicerContext


class ModelsRpc(RpcBase):
    async def CreateModel(self, r: pb.CreateModelRequest, context: Ctx) -> pb.Model:
        model = await self.h.create_model(await self.caller(context), cmd.CreateModel(
            r.name, r.description, r.task, dict(r.tags), c.gate_of(r), r.idempotency_key))
        return c.model_pb(model)

    async def GetModel(self, r: pb.GetModelRequest, context: Ctx) -> pb.Model:
        return c.model_pb(await self.h.get_model(await self.caller(context), r.name))

    async def ListModels(self, r: pb.ListModelsRequest, context: Ctx) -> pb.ListModelsResponse:
        found, token = await self.h.list_models(await self.caller(context), page_of(r.page), r.name_prefix)
        return pb.ListModelsResponse(models=[c.model_pb(m) for m in found], next_page_token=token)

    async def UploadArtifact(self, requests: AsyncIterator[pb.UploadArtifactRequest], context: Ctx) -> pb.Artifact:
        caller = await self.caller(context)
        stream = aiter(requests)
        first = await anext(stream, None)
        if first is None or first.WhichOneof("part") != "header":
            raise InvalidArgument("the first message of an upload must carry the header", field="header")
        header = first.header

        async def chunks() -> AsyncIterator[bytes]:
            async for message in stream:
                if message.WhichOneof("part") != "chunk":
                    raise InvalidArgument("only the first message of an upload may carry a header", field="header")
                yield message.chunk

        artifact = await self.h.upload_artifact(
            caller, cmd.UploadArtifact(header.format, header.sha256, header.size_bytes), chunks())
        return c.artifact_pb(artifact)

    async def DownloadArtifact(self, r: pb.DownloadArtifactRequest,
                               context: Ctx) -> AsyncIterator[pb.DownloadArtifactResponse]:
        _, chunks = await self.h.download_artifact(await self.caller(context), r.sha256)
        async for chunk in chunks:
            yield pb.DownloadArtifactResponse(chunk=chunk)

    async def GetArtifact(self, r: pb.GetArtifactRequest, context: Ctx) -> pb.Artifact:
        return c.artifact_pb(await self.h.get_artifact(await self.caller(context), r.sha256))

    async def RegisterModelVersion(self, r: pb.RegisterModelVersionRequest, context: Ctx) -> pb.ModelVersion:
        version = await self.h.register_version(await self.caller(context), cmd.RegisterModelVersion(
            r.model, r.artifact_sha256, r.artifact_uri, c.signature_of(r.signature), dict(r.params), dict(r.metrics),
            dict(r.tags), r.run_id, r.reference_profile, tuple(c.evaluation_of(e) for e in r.evaluations),
            r.idempotency_key))
        return c.version_pb(version)

    async def GetModelVersion(self, r: pb.GetModelVersionRequest, context: Ctx) -> pb.ModelVersion:
        return c.version_pb(await self.h.get_version(await self.caller(context), r.model, r.version))

    async def ListModelVersions(self, r: pb.ListModelVersionsRequest, context: Ctx) -> pb.ListModelVersionsResponse:
        found, token = await self.h.list_versions(await self.caller(context), r.model, page_of(r.page),
                                                  c.STATUS_OF.get(r.status))
        return pb.ListModelVersionsResponse(versions=[c.version_pb(v) for v in found], next_page_token=token)

    async def ResolveAlias(self, r: pb.ResolveAliasRequest, context: Ctx) -> pb.ModelVersion:
        return c.version_pb(await self.h.resolve_alias(await self.caller(context), r.model, r.alias))

    async def RecordEvaluation(self, r: pb.RecordEvaluationRequest, context: Ctx) -> pb.ModelVersion:
        version = await self.h.record_evaluation(await self.caller(context), cmd.RecordEvaluation(
            r.model, r.version, c.evaluation_of(r.evaluation)))
        return c.version_pb(version)

    async def SetVersionStatus(self, r: pb.SetVersionStatusRequest, context: Ctx) -> pb.ModelVersion:
        status = c.STATUS_OF.get(r.status)
        if status is None:
            raise InvalidArgument("status must be one of the VERSION_STATUS_ values", field="status")
        version = await self.h.set_version_status(await self.caller(context), cmd.SetVersionStatus(
            r.model, r.version, status, r.reason))
        return c.version_pb(version)
