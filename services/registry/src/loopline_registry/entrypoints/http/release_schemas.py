"""REST bodies of deployments, rollbacks, audit, datasets and runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from loopline_registry.domain.audit import AuditEntry, ServedAt
from loopline_registry.domain.datasets import DatasetVersion
from loopline_registry.domain.deployment import Deployment
from loopline_registry.domain.runs import TrainingRun
from loopline_registry.entrypoints.http.catalog_schemas import VersionOut


class SplitIO(BaseModel):
    version: int
    weight: float = Field(ge=0, le=1)
    variant: Literal["champion", "canary"] = "champion"


class DeploymentIn(BaseModel):
    #: 0 when the model has no deployment yet.
    expected_revision: int
    splits: list[SplitIO]
    shadow_versions: list[int] = []
    reason: str = ""
    override_gate: bool = False


class DeploymentOut(BaseModel):
    model: str
    revision: int
    splits: list[SplitIO]
    shadow_versions: list[int]
    updated_at: datetime
    updated_by: str
    reason: str
    #: The version that answers when a serving one fails at Triton (0: none; null: not recorded,
    #: a revision from before the registry kept it).
    fallback_version: int | None = 0

    @classmethod
    def of(cls, d: Deployment) -> DeploymentOut:
        return cls(model=d.model, revision=d.revision, shadow_versions=list(d.shadow_versions),
                   splits=[SplitIO(version=s.version, weight=s.weight, variant=s.variant.value) for s in d.splits],
                   updated_at=d.updated_at, updated_by=d.updated_by, reason=d.reason,
                   fallback_version=d.fallback_version)


class RetireIn(BaseModel):
    #: The revision the caller saw (409 if it has changed since).
    expected_revision: int
    reason: str


class RollbackIn(BaseModel):
    reason: str
    to_version: int = 0


class RollbackOut(BaseModel):
    champion: VersionOut
    deployment: DeploymentOut | None


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    model: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    reason: str
    trace_id: str

    @classmethod
    def of(cls, e: AuditEntry) -> AuditOut:
        return cls(id=e.id, at=e.at, actor=e.actor, action=e.action, target=e.target, model=e.model,
                   before=dict(e.before) if e.before is not None else None,
                   after=dict(e.after) if e.after is not None else None, reason=e.reason, trace_id=e.trace_id)


class AuditPage(BaseModel):
    entries: list[AuditOut]
    next_page_token: str


class ServedOut(BaseModel):
    model: str
    at: datetime
    deployment: DeploymentOut | None
    champion_version: int
    serving_versions: list[int]

    @classmethod
    def of(cls, s: ServedAt) -> ServedOut:
        return cls(model=s.model, at=s.at, deployment=DeploymentOut.of(s.deployment) if s.deployment else None,
                   champion_version=s.champion or 0, serving_versions=s.serving_versions())


class DatasetVersionOut(BaseModel):
    dataset: str
    version: int
    content_sha256: str
    row_count: int
    window_start: datetime | None
    window_end: datetime | None
    query: str
    created_at: datetime
    created_by: str

    @classmethod
    def of(cls, v: DatasetVersion) -> DatasetVersionOut:
        return cls(**{k: getattr(v, k) for k in cls.model_fields})


class RunOut(BaseModel):
    run_id: str
    model: str
    status: Literal["running", "completed", "failed"]
    params: dict[str, str]
    code_version: str
    environment: dict[str, str]
    inputs: list[dict[str, Any]]
    metric_history: list[dict[str, Any]]
    started_at: datetime
    ended_at: datetime | None
    failure_reason: str
    created_by: str

    @classmethod
    def of(cls, r: TrainingRun) -> RunOut:
        return cls(run_id=r.id, model=r.model, status=r.status.value, params=dict(r.params),
                   code_version=r.code_version, environment=dict(r.environment),
                   inputs=[{"dataset": i.dataset, "version": i.version, "role": i.role} for i in r.inputs],
                   metric_history=[{"name": p.name, "step": p.step, "value": p.value, "at": p.at}
                                   for p in r.metric_history],
                   started_at=r.started_at, ended_at=r.ended_at, failure_reason=r.failure_reason,
                   created_by=r.created_by)
