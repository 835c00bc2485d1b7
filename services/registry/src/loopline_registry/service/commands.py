"""Commands: what callers ask the registry to change (imperative names, plain data)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from loopline_registry.domain.deployment import TrafficSplit
from loopline_registry.domain.model import GatePolicy
from loopline_registry.domain.runs import RunInput, RunStatus
from loopline_registry.domain.version import Evaluation, Signature, VersionStatus


@dataclass(frozen=True)
class CreateModel:
    name: str
    description: str = ""
    task: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    gate: GatePolicy | None = None
    idempotency_key: str = ""


@dataclass(frozen=True)
class UploadArtifact:
    format: str
    sha256: str
    size_bytes: int = 0


@dataclass(frozen=True)
class RegisterModelVersion:
    model: str
    artifact_sha256: str = ""
    artifact_uri: str = ""
    signature: Signature = Signature()
    params: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    run_id: str = ""
    reference_profile: bytes = b""
    evaluations: tuple[Evaluation, ...] = ()
    idempotency_key: str = ""


@dataclass(frozen=True)
class RecordEvaluation:
    model: str
    version: int
    evaluation: Evaluation


@dataclass(frozen=True)
class SetVersionStatus:
    model: str
    version: int
    status: VersionStatus
    reason: str = ""


@dataclass(frozen=True)
class PromoteModelVersion:
    model: str
    version: int
    alias: str
    reason: str = ""
    override_gate: bool = False


@dataclass(frozen=True)
class SetDeployment:
    model: str
    expected_revision: int
    splits: tuple[TrafficSplit, ...]
    shadow_versions: tuple[int, ...] = ()
    reason: str = ""
    override_gate: bool = False


@dataclass(frozen=True)
class RetireDeployment:
    model: str
    expected_revision: int
    reason: str


@dataclass(frozen=True)
class RollBack:
    model: str
    reason: str
    #: 0: the version that was champion before the current one.
    to_version: int = 0


@dataclass(frozen=True)
class CreateDataset:
    name: str
    description: str = ""
    idempotency_key: str = ""


@dataclass(frozen=True)
class CreateDatasetVersion:
    dataset: str
    content_sha256: str
    row_count: int = 0
    window_start: datetime | None = None
    window_end: datetime | None = None
    query: str = ""
    idempotency_key: str = ""


@dataclass(frozen=True)
class StartRun:
    model: str
    params: Mapping[str, str] = field(default_factory=dict)
    code_version: str = ""
    environment: Mapping[str, str] = field(default_factory=dict)
    inputs: tuple[RunInput, ...] = ()
    idempotency_key: str = ""
    #: The trainer's own run id; generated when empty.
    run_id: str = ""


@dataclass(frozen=True)
class LogRunMetrics:
    run_id: str
    #: (name, step, value)
    points: tuple[tuple[str, int, float], ...]


@dataclass(frozen=True)
class FinishRun:
    run_id: str
    status: RunStatus
    reason: str = ""


@dataclass(frozen=True)
class CreateApiKey:
    name: str
    role: str
