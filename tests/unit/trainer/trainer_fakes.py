"""In-memory registry, feedback store and event sink for the trainer's unit tests,
and seeded two-concept data."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
from loopline_core.errors import FailedPrecondition, InvalidArgument, NotFound

from loopline_trainer.domain.dataset import Snapshot
from loopline_trainer.domain.runs import Run
from loopline_trainer.service.ports import Champion, NewVersion, Split
from loopline_trainer.settings import DatasetSettings, TrainerSettings, TrainingSettings

NAMES = ("a", "b", "c", "d")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def concept_rows(n: int, *, concept: int, seed: int, noise: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Concept 0: a + b > 0; concept 1: a - b > 0. ``noise``: share of labels flipped at random."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(NAMES))).astype(np.float32)
    y = (x[:, 0] + (x[:, 1] if concept == 0 else -x[:, 1]) > 0).astype(np.float64)
    flip = rng.random(n) < noise
    y[flip] = rng.integers(0, 2, int(flip.sum()))
    return x, y


def records(n: int, *, concept: int, seed: int, noise: float = 0.0) -> list[dict[str, object]]:
    x, y = concept_rows(n, concept=concept, seed=seed, noise=noise)
    return [{"features": dict(zip(NAMES, map(float, row), strict=True)), "label": int(label),
             "event_time": (T0 + timedelta(seconds=i)).isoformat()} for i, (row, label) in enumerate(zip(x, y))]


def fast_settings(**dataset: object) -> TrainerSettings:
    return TrainerSettings(backend="memory", training=TrainingSettings(epochs=25, patience=4, hidden=16,
                                                                       batch_size=32, learning_rate=0.02),
                           dataset=DatasetSettings(**{"min_rows": 50, "wait_s": 0.0, "poll_s": 0.01, **dataset}))


@dataclass
class StoredVersion:
    new: NewVersion
    evaluations: dict[str, dict[str, float]] = field(default_factory=dict)


class FakeRegistry:
    """Keeps what the trainer records; its gate compares accuracy on shared holdouts (margin 0)."""

    def __init__(self) -> None:
        self.models: dict[str, str] = {}
        self.artifacts: dict[str, bytes] = {}
        self.datasets: dict[str, list[tuple[str, int, str, str]]] = {}
        self.runs: dict[str, dict[str, object]] = {}
        self.metrics: dict[str, list[tuple[str, int, float]]] = {}
        self.versions: dict[str, list[StoredVersion]] = {}
        self.aliases: dict[str, int] = {}
        self.deployments: dict[str, tuple[int, list[Split]]] = {}
        self.active = 0
        self.max_active = 0

    async def ensure_model(self, model: str, task: str) -> None:
        self.models.setdefault(model, task)

    async def champion(self, model: str) -> Champion | None:
        if model not in self.aliases:
            return None
        v = self.versions[model][self.aliases[model] - 1].new
        return Champion(self.aliases[model], v.artifact_sha256, v.feature_names, v.params)

    async def download(self, sha256: str) -> bytes:
        return self.artifacts[sha256]

    async def upload(self, data: bytes, sha256: str) -> None:
        if hashlib.sha256(data).hexdigest() != sha256:
            raise InvalidArgument("hash mismatch", field="sha256")
        self.artifacts[sha256] = data

    async def dataset_version(self, dataset: str, snapshot: Snapshot, key: str) -> int:
        versions = self.datasets.setdefault(dataset, [])
        versions.append((snapshot.content_sha256(), len(snapshot), snapshot.query, key))
        return len(versions)

    async def create_run(self, run_id: str, model: str, params: dict[str, str], code_version: str,
                         environment: dict[str, str], inputs: Sequence[tuple[str, int, str]]) -> None:
        self.runs[run_id] = {"model": model, "params": params, "code_version": code_version,
                             "environment": environment, "inputs": list(inputs), "status": "running"}
        self.active += 1
        self.max_active = max(self.max_active, self.active)

    async def log_metrics(self, run_id: str, points: Sequence[tuple[str, int, float]]) -> None:
        self.metrics.setdefault(run_id, []).extend(points)

    async def finish_run(self, run_id: str, ok: bool, reason: str) -> None:
        if run_id not in self.runs:
            raise NotFound(f"run {run_id}")
        self.runs[run_id].update(status="completed" if ok else "failed", reason=reason)
        self.active -= 1

    async def register(self, version: NewVersion) -> int:
        stored = self.versions.setdefault(version.model, [])
        stored.append(StoredVersion(version, {version.holdout_sha256: version.evaluation}))
        return len(stored)

    async def record_evaluation(self, model: str, version: int, holdout_sha256: str,
                                metrics: dict[str, float]) -> None:
        self.versions[model][version - 1].evaluations[holdout_sha256] = metrics

    async def promote(self, model: str, version: int, reason: str) -> None:
        self.aliases[model] = version

    async def deployment(self, model: str) -> tuple[int, list[Split]]:
        return self.deployments.get(model, (0, []))

    async def set_deployment(self, model: str, revision: int, splits: Sequence[Split], reason: str) -> None:
        current, _ = self.deployments.get(model, (0, []))
        if revision != current:
            raise FailedPrecondition(f"deployment is at revision {current}, not {revision}")
        champion = self.aliases.get(model)
        for split in splits:
            if champion and split.version != champion:
                ours = self.versions[model][split.version - 1].evaluations
                theirs = self.versions[model][champion - 1].evaluations
                shared = [h for h in ours if h in theirs]
                if not shared or any(ours[h]["accuracy"] <= theirs[h]["accuracy"] for h in shared):
                    raise FailedPrecondition(f"promotion gate refused: version {split.version} does not beat "
                                             f"champion version {champion}")
        self.deployments[model] = (current + 1, list(splits))


class FakeFeedback:
    """Labelled rows with event times; ``export`` filters them like ExportLabeled."""

    def __init__(self) -> None:
        self.rows: list[tuple[datetime, np.ndarray, float]] = []
        self.calls = 0

    def add(self, x: np.ndarray, y: np.ndarray, start: datetime) -> None:
        self.rows += [(start + timedelta(seconds=i), x[i], float(y[i])) for i in range(len(y))]

    async def export(self, model: str, *, since: datetime | None, until: datetime | None, limit: int,
                     feature_names: Sequence[str] | None, class_names: Sequence[str] = ()) -> Snapshot:
        self.calls += 1
        chosen = [r for r in sorted(self.rows, key=lambda r: r[0])
                  if (since is None or r[0] >= since) and (until is None or r[0] < until)]
        chosen = chosen[-limit:] if limit else chosen
        names = tuple(feature_names) if feature_names else NAMES
        x = np.asarray([r[1] for r in chosen], dtype=np.float32).reshape(len(chosen), len(names))
        return Snapshot(names, x, np.asarray([r[2] for r in chosen]), tuple(r[0] for r in chosen))


class RecordingEvents:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, Run]] = []

    async def started(self, run: Run, dataset_sha256: str) -> None:
        self.seen.append(("started", dataset_sha256, run))

    async def completed(self, run: Run) -> None:
        self.seen.append(("completed", "", run))

    async def failed(self, run: Run) -> None:
        self.seen.append(("failed", run.error, run))

    def kinds(self, run_id: str) -> list[str]:
        return [kind for kind, _, run in self.seen if run.run_id == run_id]


def entry_records(model: str, params: dict[str, str]) -> list[dict[str, object]]:
    """A user dataset entry point (``entrypoint:trainer_fakes:entry_records``)."""
    return records(int(params.get("rows", "300")), concept=0, seed=8)


def linear(n_features: int, n_outputs: int, hidden: int):  # type: ignore[no-untyped-def]
    """A user model entry point: a plain linear layer."""
    from torch import nn

    return nn.Linear(n_features, n_outputs)
