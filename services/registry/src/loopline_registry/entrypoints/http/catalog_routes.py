"""REST routes of models, artifacts and versions.

No `from __future__ import annotations` in route modules: FastAPI resolves the
`Annotated` aliases defined inside `routes()` at definition time.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse

from loopline_registry.domain.auth import Caller
from loopline_registry.domain.model import GatePolicy
from loopline_registry.domain.version import Evaluation, VersionStatus
from loopline_registry.entrypoints.http.catalog_schemas import (ArtifactOut, EvaluationIO, ModelIn, ModelOut,
                                                                ModelsPage, PromoteIn, StatusIn, VersionIn,
                                                                VersionOut, VersionsPage)
from loopline_registry.service import commands as cmd
from loopline_registry.service.handlers import Handlers
from loopline_registry.service.queries import Page

_RAW_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}


def routes(h: Handlers, caller: Any) -> APIRouter:
    api = APIRouter(prefix="/v1", tags=["models"])
    Who = Annotated[Caller, Depends(caller)]
    IdempotencyKey = Annotated[str, Header(alias="Idempotency-Key")]

    @api.post("/models", status_code=201)
    async def create_model(body: ModelIn, who: Who, key: IdempotencyKey = "") -> ModelOut:
        gate = GatePolicy(body.gate.metric, body.gate.higher_is_better, body.gate.margin) if body.gate else None
        return ModelOut.of(await h.create_model(who, cmd.CreateModel(body.name, body.description, body.task,
                                                                     body.tags, gate, key)))

    @api.get("/models")
    async def list_models(who: Who, page_size: int = 0, page_token: str = "", name_prefix: str = "") -> ModelsPage:
        found, token = await h.list_models(who, Page(page_size, page_token), name_prefix)
        return ModelsPage(models=[ModelOut.of(m) for m in found], next_page_token=token)

    @api.get("/models/{name}")
    async def get_model(name: str, who: Who) -> ModelOut:
        return ModelOut.of(await h.get_model(who, name))

    @api.post("/artifacts", status_code=201, openapi_extra=_RAW_BODY)
    async def upload_artifact(request: Request, who: Who,
                              fmt: Annotated[str, Header(alias="X-Artifact-Format")],
                              sha256: Annotated[str, Header(alias="X-Artifact-Sha256")],
                              length: Annotated[int, Header(alias="Content-Length")] = 0) -> ArtifactOut:
        """Streams the raw body into the store; the sha256 header must match the bytes."""
        header = cmd.UploadArtifact(fmt, sha256, length)
        return ArtifactOut.of(await h.upload_artifact(who, header, request.stream()))

    @api.get("/artifacts/{sha256}", response_class=StreamingResponse)
    async def download_artifact(sha256: str, who: Who) -> StreamingResponse:
        artifact, chunks = await h.download_artifact(who, sha256)
        return StreamingResponse(chunks, media_type="application/octet-stream",
                                 headers={"X-Artifact-Sha256": artifact.sha256, "X-Artifact-Format": artifact.format,
                                          "Content-Length": str(artifact.size_bytes)})

    @api.post("/models/{name}/versions", status_code=201)
    async def register_version(name: str, body: VersionIn, who: Who, key: IdempotencyKey = "") -> VersionOut:
        version = await h.register_version(who, cmd.RegisterModelVersion(
            name, body.artifact_sha256, body.artifact_uri, body.signature.domain(), body.params, body.metrics,
            body.tags, body.run_id, body.profile(),
            tuple(Evaluation(e.holdout_sha256, e.metrics) for e in body.evaluations), key))
        return VersionOut.of(version)

    @api.get("/models/{name}/versions")
    async def list_versions(name: str, who: Who, page_size: int = 0, page_token: str = "",
                            status: Annotated[VersionStatus | None, Query()] = None) -> VersionsPage:
        found, token = await h.list_versions(who, name, Page(page_size, page_token), status)
        return VersionsPage(versions=[VersionOut.of(v) for v in found], next_page_token=token)

    @api.get("/models/{name}/versions/{version}")
    async def get_version(name: str, version: int, who: Who) -> VersionOut:
        return VersionOut.of(await h.get_version(who, name, version))

    @api.post("/models/{name}/versions/{version}/evaluations", status_code=201)
    async def record_evaluation(name: str, version: int, body: EvaluationIO, who: Who) -> VersionOut:
        evaluation = Evaluation(body.holdout_sha256, body.metrics)
        return VersionOut.of(await h.record_evaluation(who, cmd.RecordEvaluation(name, version, evaluation)))

    @api.put("/models/{name}/versions/{version}/status")
    async def set_status(name: str, version: int, body: StatusIn, who: Who) -> VersionOut:
        command = cmd.SetVersionStatus(name, version, VersionStatus(body.status), body.reason)
        return VersionOut.of(await h.set_version_status(who, command))

    @api.get("/models/{name}/aliases/{alias}")
    async def resolve_alias(name: str, alias: str, who: Who) -> VersionOut:
        return VersionOut.of(await h.resolve_alias(who, name, alias))

    @api.put("/models/{name}/aliases/{alias}")
    async def promote(name: str, alias: str, body: PromoteIn, who: Who) -> VersionOut:
        command = cmd.PromoteModelVersion(name, body.version, alias, body.reason, body.override_gate)
        return VersionOut.of(await h.promote(who, command))

    return api
