"""REST routes of datasets, training runs, lineage and API keys."""

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Response
from pydantic import BaseModel

from loopline_registry.domain.auth import Caller
from loopline_registry.domain.runs import RunInput, RunStatus
from loopline_registry.entrypoints.http.catalog_schemas import VersionOut
from loopline_registry.entrypoints.http.release_schemas import DatasetVersionOut, RunOut
from loopline_registry.service import commands as cmd
from loopline_registry.service.handlers import Handlers


class DatasetIn(BaseModel):
    name: str
    description: str = ""


class DatasetVersionIn(BaseModel):
    content_sha256: str
    row_count: int = 0
    window_start: datetime | None = None
    window_end: datetime | None = None
    query: str = ""


class RunInputIO(BaseModel):
    dataset: str
    version: int
    role: str


class RunIn(BaseModel):
    model: str
    run_id: str = ""
    params: dict[str, str] = {}
    code_version: str = ""
    environment: dict[str, str] = {}
    inputs: list[RunInputIO] = []


class MetricIn(BaseModel):
    name: str
    step: int = 0
    value: float


class FinishIn(BaseModel):
    status: Literal["completed", "failed"]
    reason: str = ""


class LineageOut(BaseModel):
    version: VersionOut
    run: RunOut | None
    inputs: list[dict[str, Any]]


class ApiKeyIn(BaseModel):
    name: str
    role: Literal["reader", "trainer", "operator", "admin"]


class ApiKeyOut(BaseModel):
    name: str
    role: str
    secret: str


def routes(h: Handlers, caller: Any) -> APIRouter:
    api = APIRouter(prefix="/v1", tags=["records"])
    Who = Annotated[Caller, Depends(caller)]
    IdempotencyKey = Annotated[str, Header(alias="Idempotency-Key")]

    @api.post("/datasets", status_code=201)
    async def create_dataset(body: DatasetIn, who: Who, key: IdempotencyKey = "") -> dict[str, Any]:
        d = await h.create_dataset(who, cmd.CreateDataset(body.name, body.description, key))
        return {"name": d.name, "description": d.description, "created_at": d.created_at, "created_by": d.created_by}

    @api.post("/datasets/{name}/versions", status_code=201)
    async def create_dataset_version(name: str, body: DatasetVersionIn, who: Who,
                                     key: IdempotencyKey = "") -> DatasetVersionOut:
        version = await h.create_dataset_version(who, cmd.CreateDatasetVersion(
            name, body.content_sha256, body.row_count, body.window_start, body.window_end, body.query, key))
        return DatasetVersionOut.of(version)

    @api.get("/datasets/{name}/versions")
    async def list_dataset_versions(name: str, who: Who) -> list[DatasetVersionOut]:
        return [DatasetVersionOut.of(v) for v in await h.list_dataset_versions(who, name)]

    @api.get("/datasets/{name}/versions/{version}")
    async def get_dataset_version(name: str, version: int, who: Who) -> DatasetVersionOut:
        return DatasetVersionOut.of(await h.get_dataset_version(who, name, version))

    @api.post("/runs", status_code=201)
    async def start_run(body: RunIn, who: Who, key: IdempotencyKey = "") -> RunOut:
        inputs = tuple(RunInput(i.dataset, i.version, i.role) for i in body.inputs)
        return RunOut.of(await h.start_run(who, cmd.StartRun(body.model, body.params, body.code_version,
                                                             body.environment, inputs, key, body.run_id)))

    @api.get("/runs/{run_id}")
    async def get_run(run_id: str, who: Who) -> RunOut:
        return RunOut.of(await h.get_run(who, run_id))

    @api.post("/runs/{run_id}/metrics", status_code=204)
    async def log_metrics(run_id: str, body: list[MetricIn], who: Who) -> Response:
        await h.log_metrics(who, cmd.LogRunMetrics(run_id, tuple((m.name, m.step, m.value) for m in body)))
        return Response(status_code=204)

    @api.post("/runs/{run_id}/finish")
    async def finish_run(run_id: str, body: FinishIn, who: Who) -> RunOut:
        return RunOut.of(await h.finish_run(who, cmd.FinishRun(run_id, RunStatus(body.status), body.reason)))

    @api.get("/models/{name}/versions/{version}/lineage")
    async def lineage(name: str, version: int, who: Who) -> LineageOut:
        found = await h.get_lineage(who, name, version)
        return LineageOut(version=VersionOut.of(found.version), run=RunOut.of(found.run) if found.run else None,
                          inputs=[{"role": i.role, "dataset_version": DatasetVersionOut.of(i.dataset_version)}
                                  for i in found.inputs])

    @api.post("/api-keys", status_code=201)
    async def create_api_key(body: ApiKeyIn, who: Who) -> ApiKeyOut:
        key, secret = await h.create_api_key(who, cmd.CreateApiKey(body.name, body.role))
        return ApiKeyOut(name=key.name, role=key.role.label, secret=secret)

    @api.delete("/api-keys/{name}", status_code=204)
    async def revoke_api_key(name: str, who: Who) -> Response:
        await h.revoke_api_key(who, name)
        return Response(status_code=204)

    return api
