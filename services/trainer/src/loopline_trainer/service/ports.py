"""What the trainer's handlers need from the outside world."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from loopline_trainer.domain.dataset import Snapshot
from loopline_trainer.domain.runs import Run, RunRequest


@dataclass(frozen=True)
class Champion:
    version: int
    artifact_sha256: str
    feature_names: tuple[str, ...]
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Split:
    version: int
    weight: float
    variant: str  # "champion" | "canary"


@dataclass(frozen=True)
class NewVersion:
    model: str
    artifact_sha256: str
    feature_names: tuple[str, ...]
    outputs: tuple[str, int]  # (tensor name, width)
    params: dict[str, str]
    metrics: dict[str, float]
    run_id: str
    reference_profile: bytes
    holdout_sha256: str
    #: The candidate's metrics on that holdout (its gate evidence).
    evaluation: dict[str, float]
    idempotency_key: str


class Registry(Protocol):
    async def ensure_model(self, model: str, task: str) -> None: ...
    async def champion(self, model: str) -> Champion | None: ...
    async def download(self, sha256: str) -> bytes: ...
    async def upload(self, data: bytes, sha256: str) -> None: ...
    async def dataset_version(self, dataset: str, snapshot: Snapshot, key: str) -> int: ...
    async def create_run(self, run_id: str, model: str, params: dict[str, str], code_version: str,
                         environment: dict[str, str], inputs: Sequence[tuple[str, int, str]]) -> None: ...
    async def log_metrics(self, run_id: str, points: Sequence[tuple[str, int, float]]) -> None: ...
    async def finish_run(self, run_id: str, ok: bool, reason: str) -> None: ...
    async def register(self, version: NewVersion) -> int: ...
    async def record_evaluation(self, model: str, version: int, holdout_sha256: str,
                                metrics: dict[str, float]) -> None: ...
    async def promote(self, model: str, version: int, reason: str) -> None: ...
    async def deployment(self, model: str) -> tuple[int, list[Split]]: ...
    async def set_deployment(self, model: str, revision: int, splits: Sequence[Split], reason: str) -> None:
        """Raises FailedPrecondition when the promotion gate refuses."""


class Feedback(Protocol):
    async def export(self, model: str, *, since: datetime | None, until: datetime | None, limit: int,
                     feature_names: Sequence[str] | None, class_names: Sequence[str] = ()) -> Snapshot:
        """Labelled, non-shadow predictions; ``class_names`` maps class-name labels to indices."""


class RunStore(Protocol):
    async def add(self, run: Run) -> Run:
        """Stores a new run, or returns the one already stored for its id."""
    async def get(self, run_id: str) -> Run | None: ...
    async def save(self, run: Run) -> None: ...
    async def unfinished(self) -> list[Run]: ...


class Events(Protocol):
    async def started(self, run: Run, dataset_sha256: str) -> None: ...
    async def completed(self, run: Run) -> None: ...
    async def failed(self, run: Run) -> None: ...


__all__ = ["Champion", "Events", "Feedback", "NewVersion", "Registry", "RunRequest", "RunStore", "Split"]
