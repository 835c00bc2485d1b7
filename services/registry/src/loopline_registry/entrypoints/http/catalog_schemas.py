"""REST bodies of models, artifacts and versions (pydantic, shown in the OpenAPI document)."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Literal

from loopline_core.errors import InvalidArgument
from pydantic import BaseModel

from loopline_registry.domain.model import RegisteredModel
from loopline_registry.domain.version import Artifact, ModelVersion, Signature, TensorSpec

Status = Literal["candidate", "staged", "production", "archived"]


class GateIO(BaseModel):
    metric: str
    higher_is_better: bool = True
    margin: float = 0.0


class ModelIn(BaseModel):
    name: str
    description: str = ""
    task: str = ""
    tags: dict[str, str] = {}
    gate: GateIO | None = None


class ModelOut(BaseModel):
    name: str
    description: str
    task: str
    tags: dict[str, str]
    aliases: dict[str, int]
    gate: GateIO | None
    created_at: datetime
    created_by: str

    @classmethod
    def of(cls, m: RegisteredModel) -> ModelOut:
        gate = GateIO(metric=m.gate.metric, higher_is_better=m.gate.higher_is_better, margin=m.gate.margin) \
            if m.gate else None
        return cls(name=m.name, description=m.description, task=m.task, tags=dict(m.tags), aliases=dict(m.aliases),
                   gate=gate, created_at=m.created_at, created_by=m.created_by)


class ModelsPage(BaseModel):
    models: list[ModelOut]
    next_page_token: str


class ArtifactOut(BaseModel):
    sha256: str
    size_bytes: int
    format: str
    uri: str

    @classmethod
    def of(cls, a: Artifact) -> ArtifactOut:
        return cls(sha256=a.sha256, size_bytes=a.size_bytes, format=a.format, uri=a.uri)


class TensorSpecIO(BaseModel):
    name: str
    datatype: str
    shape: list[int] = []


class SignatureIO(BaseModel):
    inputs: list[TensorSpecIO] = []
    outputs: list[TensorSpecIO] = []
    feature_names: list[str] = []

    def domain(self) -> Signature:
        def specs(items: list[TensorSpecIO]) -> tuple[TensorSpec, ...]:
            return tuple(TensorSpec(s.name, s.datatype, tuple(s.shape)) for s in items)
        return Signature(specs(self.inputs), specs(self.outputs), tuple(self.feature_names))

    @classmethod
    def of(cls, s: Signature) -> SignatureIO:
        def specs(items: tuple[TensorSpec, ...]) -> list[TensorSpecIO]:
            return [TensorSpecIO(name=t.name, datatype=t.datatype, shape=list(t.shape)) for t in items]
        return cls(inputs=specs(s.inputs), outputs=specs(s.outputs), feature_names=list(s.feature_names))


class EvaluationIO(BaseModel):
    holdout_sha256: str
    metrics: dict[str, float]


class VersionIn(BaseModel):
    artifact_sha256: str = ""
    artifact_uri: str = ""
    signature: SignatureIO = SignatureIO()
    params: dict[str, str] = {}
    metrics: dict[str, float] = {}
    tags: dict[str, str] = {}
    run_id: str = ""
    reference_profile_base64: str = ""
    evaluations: list[EvaluationIO] = []

    def profile(self) -> bytes:
        try:
            return base64.b64decode(self.reference_profile_base64, validate=True)
        except ValueError:
            raise InvalidArgument("reference_profile_base64 is not base64", field="reference_profile_base64") from None


class VersionOut(BaseModel):
    model: str
    version: int
    artifact: ArtifactOut
    signature: SignatureIO
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]
    status: Status
    run_id: str
    evaluations: list[EvaluationIO]
    reference_profile_base64: str
    created_at: datetime
    created_by: str

    @classmethod
    def of(cls, v: ModelVersion) -> VersionOut:
        return cls(model=v.model, version=v.version, artifact=ArtifactOut.of(v.artifact),
                   signature=SignatureIO.of(v.signature), params=dict(v.params), metrics=dict(v.metrics),
                   tags=dict(v.tags), status=v.status.value, run_id=v.run_id,
                   evaluations=[EvaluationIO(holdout_sha256=e.holdout_sha256, metrics=dict(e.metrics))
                                for e in v.evaluations],
                   reference_profile_base64=base64.b64encode(v.reference_profile).decode(),
                   created_at=v.created_at, created_by=v.created_by)


class VersionsPage(BaseModel):
    versions: list[VersionOut]
    next_page_token: str


class StatusIn(BaseModel):
    status: Status
    reason: str = ""


class PromoteIn(BaseModel):
    version: int
    reason: str = ""
    override_gate: bool = False
