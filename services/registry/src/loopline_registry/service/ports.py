"""The ports the handlers need; adapters (in-memory, PostgreSQL, filesystem) implement them.

A unit of work is one transaction over every repository: handlers call
``commit()`` explicitly, leaving the block without it rolls everything back.
Outbox messages and audit entries are written through the same unit of work as
the change they describe, so they commit or vanish together with it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from loopline_registry.domain.audit import AuditEntry
from loopline_registry.domain.auth import ApiKey
from loopline_registry.domain.datasets import Dataset, DatasetVersion
from loopline_registry.domain.deployment import Deployment
from loopline_registry.domain.events import Event
from loopline_registry.domain.model import RegisteredModel
from loopline_registry.domain.runs import MetricPoint, TrainingRun
from loopline_registry.domain.version import Artifact, Evaluation, ModelVersion, VersionStatus
from loopline_registry.service.queries import AuditFilter

Clock = Callable[[], datetime]
IdGenerator = Callable[[], str]


@dataclass(frozen=True)
class OutboxMessage:
    event_id: str
    event: Event
    traceparent: str
    created_at: datetime


@dataclass(frozen=True)
class AliasMove:
    model: str
    alias: str
    version: int
    previous_version: int
    at: datetime
    actor: str
    reason: str
    gate_overridden: bool
    rollback: bool = False


class ModelRepository(Protocol):
    async def add(self, model: RegisteredModel) -> None: ...
    async def get(self, name: str, *, for_update: bool = False) -> RegisteredModel | None: ...
    async def list(self, *, after: str, limit: int, name_prefix: str = "") -> list[RegisteredModel]: ...
    async def next_version(self, name: str) -> int: ...


class VersionRepository(Protocol):
    async def add(self, version: ModelVersion) -> None: ...
    async def get(self, model: str, version: int) -> ModelVersion | None: ...
    async def by_alias(self, model: str, alias: str) -> ModelVersion | None: ...
    async def list(self, model: str, *, after: int, limit: int,
                   status: VersionStatus | None = None) -> list[ModelVersion]: ...
    async def set_status(self, model: str, version: int, status: VersionStatus) -> None: ...
    async def add_evaluation(self, model: str, version: int, evaluation: Evaluation) -> None: ...


class AliasRepository(Protocol):
    async def move(self, move: AliasMove) -> None: ...
    async def history(self, model: str, alias: str) -> list[AliasMove]: ...
    async def at(self, model: str, alias: str, moment: datetime) -> int | None: ...


class DeploymentRepository(Protocol):
    async def get(self, model: str, *, for_update: bool = False) -> Deployment | None: ...
    async def save(self, deployment: Deployment, *, traceparent: str = "") -> None: ...
    async def list(self) -> list[Deployment]: ...
    async def at(self, model: str, moment: datetime) -> Deployment | None: ...
    async def traceparent(self, model: str, revision: int) -> str:
        """The traceparent of the request that saved ``revision`` ('' when none was recorded)."""
        ...


class ArtifactRepository(Protocol):
    async def add(self, artifact: Artifact, *, at: datetime, actor: str) -> bool: ...
    async def get(self, sha256: str) -> Artifact | None: ...


class DatasetRepository(Protocol):
    async def add(self, dataset: Dataset) -> None: ...
    async def get(self, name: str, *, for_update: bool = False) -> Dataset | None: ...
    async def next_version(self, name: str) -> int: ...
    async def add_version(self, version: DatasetVersion) -> None: ...
    async def get_version(self, name: str, version: int) -> DatasetVersion | None: ...
    async def list_versions(self, name: str) -> list[DatasetVersion]: ...


class RunRepository(Protocol):
    async def add(self, run: TrainingRun) -> None: ...
    async def get(self, run_id: str, *, for_update: bool = False) -> TrainingRun | None: ...
    async def finish(self, run: TrainingRun) -> None: ...
    async def add_metrics(self, run_id: str, points: Sequence[MetricPoint]) -> None: ...


class AuditRepository(Protocol):
    async def append(self, entry: AuditEntry) -> None: ...
    async def list(self, query: AuditFilter) -> list[AuditEntry]: ...


class OutboxRepository(Protocol):
    async def add(self, message: OutboxMessage) -> None: ...


class IdempotencyRepository(Protocol):
    async def get(self, scope: str, key: str) -> tuple[str, str] | None: ...
    async def put(self, scope: str, key: str, fingerprint: str, result: str, at: datetime) -> None: ...


class ApiKeyRepository(Protocol):
    async def add(self, key: ApiKey, at: datetime) -> None: ...
    async def get(self, name: str) -> ApiKey | None: ...
    async def by_hash(self, key_hash: str) -> ApiKey | None: ...
    async def revoke(self, name: str, at: datetime) -> None: ...


class UnitOfWork(Protocol):
    models: ModelRepository
    versions: VersionRepository
    aliases: AliasRepository
    deployments: DeploymentRepository
    artifacts: ArtifactRepository
    datasets: DatasetRepository
    runs: RunRepository
    audit: AuditRepository
    outbox: OutboxRepository
    idempotency: IdempotencyRepository
    api_keys: ApiKeyRepository

    async def commit(self) -> None: ...


#: ``uow()`` opens a transaction; ``uow(readonly=True)`` may skip it for queries.
UnitOfWorkFactory = Callable[..., AbstractAsyncContextManager[UnitOfWork]]


@dataclass(frozen=True)
class StagedUpload:
    """Bytes received and hashed but not yet part of the store."""

    token: str
    sha256: str
    size_bytes: int
    head: bytes
    zip_members: tuple[str, ...] | None


class ArtifactStore(Protocol):
    """Content-addressed blobs: written by hash after verification, read by hash."""

    async def stage(self, chunks: AsyncIterator[bytes], max_bytes: int) -> StagedUpload: ...
    async def commit(self, staged: StagedUpload) -> str: ...
    async def discard(self, staged: StagedUpload) -> None: ...
    async def verify(self, sha256: str) -> None: ...
    def open(self, sha256: str, chunk_bytes: int) -> AsyncIterator[bytes]: ...
