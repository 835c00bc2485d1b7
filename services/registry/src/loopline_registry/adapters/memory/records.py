"""In-memory repositories of datasets, runs, audit, outbox, idempotency keys and API keys."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from loopline_registry.adapters import event_codec
from loopline_registry.adapters.memory.catalog import _Repo
from loopline_registry.domain.audit import AuditEntry
from loopline_registry.domain.auth import ApiKey
from loopline_registry.domain.datasets import Dataset, DatasetVersion
from loopline_registry.domain.runs import MetricPoint, TrainingRun
from loopline_registry.service.ports import OutboxMessage
from loopline_registry.service.queries import AuditFilter
from loopline_registry.service.relay import OutboxRecord


class Datasets(_Repo):
    async def add(self, dataset: Dataset) -> None:
        self.t.datasets[dataset.name] = dataset
        self.t.dataset_last[dataset.name] = 0

    async def get(self, name: str, *, for_update: bool = False) -> Dataset | None:
        return self.t.datasets.get(name)

    async def next_version(self, name: str) -> int:
        self.t.dataset_last[name] += 1
        return self.t.dataset_last[name]

    async def add_version(self, version: DatasetVersion) -> None:
        self.t.dataset_versions[(version.dataset, version.version)] = version

    async def get_version(self, name: str, version: int) -> DatasetVersion | None:
        return self.t.dataset_versions.get((name, version))

    async def list_versions(self, name: str) -> list[DatasetVersion]:
        return [v for (d, _), v in sorted(self.t.dataset_versions.items()) if d == name]


class Runs(_Repo):
    async def add(self, run: TrainingRun) -> None:
        self.t.runs[run.id] = run

    async def get(self, run_id: str, *, for_update: bool = False) -> TrainingRun | None:
        return self.t.runs.get(run_id)

    async def finish(self, run: TrainingRun) -> None:
        self.t.runs[run.id] = replace(run, metric_history=self.t.runs[run.id].metric_history)

    async def add_metrics(self, run_id: str, points: Sequence[MetricPoint]) -> None:
        run = self.t.runs[run_id]
        kept = {(p.name, p.step): p for p in (*run.metric_history, *points)}
        self.t.runs[run_id] = replace(run, metric_history=tuple(sorted(kept.values(), key=lambda p: (p.name, p.step))))


class Audit(_Repo):
    async def append(self, entry: AuditEntry) -> None:
        self.t.audit.append(replace(entry, id=len(self.t.audit) + 1))

    async def list(self, query: AuditFilter) -> list[AuditEntry]:
        found = [e for e in self.t.audit if e.id > query.after_id
                 and (not query.model or e.model == query.model) and (not query.action or e.action == query.action)
                 and (query.since is None or e.at >= query.since) and (query.until is None or e.at <= query.until)]
        return found[:query.limit]


class Outbox(_Repo):
    async def add(self, message: OutboxMessage) -> None:
        topic, key, type_name, subject, payload = event_codec.encode(message.event)
        seq = self._uow.state.next_seq
        self._uow.state.next_seq += 1
        self.t.outbox.append((OutboxRecord(seq, message.event_id, topic, key, type_name, payload, subject,
                                           message.traceparent, message.created_at), False))
        self._uow.wrote_events = True


class Idempotency(_Repo):
    async def get(self, scope: str, key: str) -> tuple[str, str] | None:
        return self.t.idempotency.get((scope, key))

    async def put(self, scope: str, key: str, fingerprint: str, result: str, at: datetime) -> None:
        self.t.idempotency[(scope, key)] = (fingerprint, result)


class ApiKeys(_Repo):
    async def add(self, key: ApiKey, at: datetime) -> None:
        self.t.api_keys[key.name] = key

    async def get(self, name: str) -> ApiKey | None:
        return self.t.api_keys.get(name)

    async def by_hash(self, key_hash: str) -> ApiKey | None:
        return next((k for k in self.t.api_keys.values() if k.key_hash == key_hash), None)

    async def revoke(self, name: str, at: datetime) -> None:
        self.t.api_keys[name] = replace(self.t.api_keys[name], revoked=True)
