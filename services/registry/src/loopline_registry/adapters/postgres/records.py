"""PostgreSQL repositories of datasets, runs, audit, outbox, idempotency keys and API keys."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from loopline_registry.adapters import event_codec
from loopline_registry.adapters.postgres.catalog import _Repo
from loopline_registry.adapters.postgres.rows import dumps
from loopline_registry.domain.audit import AuditEntry
from loopline_registry.domain.auth import ApiKey, Role
from loopline_registry.domain.datasets import Dataset, DatasetVersion
from loopline_registry.domain.runs import MetricPoint, RunInput, RunStatus, TrainingRun
from loopline_registry.service.ports import OutboxMessage
from loopline_registry.service.queries import AuditFilter

_DATASET_VERSION = ("SELECT dataset, version, content_sha256, row_count, window_start, window_end, query, created_at,"
                    " created_by FROM dataset_versions")


class Datasets(_Repo):
    async def add(self, dataset: Dataset) -> None:
        await self.db.execute("INSERT INTO datasets (name, description, created_at, created_by)"
                              " VALUES ($1, $2, $3, $4)",
                              dataset.name, dataset.description, dataset.created_at, dataset.created_by)

    async def get(self, name: str, *, for_update: bool = False) -> Dataset | None:
        row = await self.db.fetchrow("SELECT name, description, created_at, created_by FROM datasets WHERE name = $1"
                                     + (" FOR UPDATE" if for_update else ""), name)
        return Dataset(*row.values()) if row else None

    async def next_version(self, name: str) -> int:
        return await self.db.fetchval(
            "UPDATE datasets SET last_version = last_version + 1 WHERE name = $1 RETURNING last_version", name)

    async def add_version(self, v: DatasetVersion) -> None:
        await self.db.execute(
            "INSERT INTO dataset_versions (dataset, version, content_sha256, row_count, window_start, window_end,"
            " query, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            v.dataset, v.version, v.content_sha256, v.row_count, v.window_start, v.window_end, v.query, v.created_at,
            v.created_by)

    async def get_version(self, name: str, version: int) -> DatasetVersion | None:
        row = await self.db.fetchrow(f"{_DATASET_VERSION} WHERE dataset = $1 AND version = $2", name, version)
        return DatasetVersion(*row.values()) if row else None

    async def list_versions(self, name: str) -> list[DatasetVersion]:
        rows = await self.db.fetch(f"{_DATASET_VERSION} WHERE dataset = $1 ORDER BY version", name)
        return [DatasetVersion(*r.values()) for r in rows]


class Runs(_Repo):
    async def add(self, run: TrainingRun) -> None:
        await self.db.execute(
            "INSERT INTO training_runs (id, model, status, params, code_version, environment, started_at, created_by)"
            " VALUES ($1, $2, $3, $4::jsonb, $5, $6::jsonb, $7, $8)", run.id, run.model, run.status.value,
            dumps(dict(run.params)), run.code_version, dumps(dict(run.environment)), run.started_at, run.created_by)
        await self.db.executemany("INSERT INTO run_inputs (run_id, dataset, version, role) VALUES ($1, $2, $3, $4)",
                                  [(run.id, i.dataset, i.version, i.role) for i in run.inputs])

    async def get(self, run_id: str, *, for_update: bool = False) -> TrainingRun | None:
        lock = " FOR UPDATE" if for_update else ""
        row = await self.db.fetchrow(f"SELECT * FROM training_runs WHERE id = $1{lock}", run_id)
        if row is None:
            return None
        inputs = await self.db.fetch("SELECT dataset, version, role FROM run_inputs WHERE run_id = $1"
                                     " ORDER BY dataset, version", run_id)
        points = await self.db.fetch("SELECT name, step, value, at FROM run_metrics WHERE run_id = $1"
                                     " ORDER BY name, step", run_id)
        return TrainingRun(row["id"], row["model"], RunStatus(row["status"]), json.loads(row["params"]),
                           row["code_version"], json.loads(row["environment"]),
                           tuple(RunInput(*i.values()) for i in inputs), row["started_at"], row["created_by"],
                           row["ended_at"], row["failure_reason"], tuple(MetricPoint(*p.values()) for p in points))

    async def finish(self, run: TrainingRun) -> None:
        await self.db.execute("UPDATE training_runs SET status = $2, ended_at = $3, failure_reason = $4 WHERE id = $1",
                              run.id, run.status.value, run.ended_at, run.failure_reason)

    async def add_metrics(self, run_id: str, points: Sequence[MetricPoint]) -> None:
        await self.db.executemany(
            "INSERT INTO run_metrics (run_id, name, step, value, at) VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT (run_id, name, step) DO UPDATE SET value = EXCLUDED.value, at = EXCLUDED.at",
            [(run_id, p.name, p.step, p.value, p.at) for p in points])


class Audit(_Repo):
    async def append(self, e: AuditEntry) -> None:
        await self.db.execute(
            "INSERT INTO audit_log (at, actor, action, target, model, before, after, reason, trace_id)"
            " VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8, $9)", e.at, e.actor, e.action, e.target, e.model,
            None if e.before is None else dumps(e.before), None if e.after is None else dumps(e.after), e.reason,
            e.trace_id)

    async def list(self, q: AuditFilter) -> list[AuditEntry]:
        rows = await self.db.fetch(
            "SELECT * FROM audit_log WHERE id > $1 AND ($2 = '' OR model = $2) AND ($3 = '' OR action = $3)"
            " AND ($4::timestamptz IS NULL OR at >= $4) AND ($5::timestamptz IS NULL OR at <= $5)"
            " ORDER BY id LIMIT $6", q.after_id, q.model, q.action, q.since, q.until, q.limit)
        return [AuditEntry(r["at"], r["actor"], r["action"], r["target"], r["model"],
                           r["before"] and json.loads(r["before"]), r["after"] and json.loads(r["after"]),
                           r["reason"], r["trace_id"], r["id"]) for r in rows]


class Outbox(_Repo):
    async def add(self, message: OutboxMessage) -> None:
        topic, key, type_name, subject, payload = event_codec.encode(message.event)
        await self.db.execute(
            "INSERT INTO outbox (event_id, topic, key, type, subject, payload, traceparent, created_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)", message.event_id, topic, key, type_name, subject, payload,
            message.traceparent, message.created_at)
        self._uow.wrote_events = True


class Idempotency(_Repo):
    async def get(self, scope: str, key: str) -> tuple[str, str] | None:
        # Concurrent requests with the same key queue on a transaction-scoped lock:
        # the second reads the key once the first has committed and replays its result
        # (instead of racing it to the insert and failing on the unique key).
        await self.db.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"{scope}\n{key}")
        row = await self.db.fetchrow("SELECT fingerprint, result FROM idempotency_keys WHERE scope = $1 AND key = $2",
                                     scope, key)
        return (row["fingerprint"], row["result"]) if row else None

    async def put(self, scope: str, key: str, fingerprint: str, result: str, at: datetime) -> None:
        await self.db.execute("INSERT INTO idempotency_keys (scope, key, fingerprint, result, created_at)"
                              " VALUES ($1, $2, $3, $4, $5)", scope, key, fingerprint, result, at)


class ApiKeys(_Repo):
    _SELECT = "SELECT name, role, key_hash, created_by, revoked_at IS NOT NULL AS revoked FROM api_keys"

    async def add(self, key: ApiKey, at: datetime) -> None:
        await self.db.execute(
            "INSERT INTO api_keys (name, key_hash, role, created_at, created_by) VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT (name) DO UPDATE SET key_hash = EXCLUDED.key_hash, role = EXCLUDED.role,"
            " created_at = EXCLUDED.created_at, created_by = EXCLUDED.created_by, revoked_at = NULL",
            key.name, key.key_hash, key.role.label, at, key.created_by)

    def _key(self, row) -> ApiKey | None:  # type: ignore[no-untyped-def]
        return ApiKey(row["name"], Role.parse(row["role"]), row["key_hash"], row["created_by"], row["revoked"]) \
            if row else None

    async def get(self, name: str) -> ApiKey | None:
        return self._key(await self.db.fetchrow(f"{self._SELECT} WHERE name = $1", name))

    async def by_hash(self, key_hash: str) -> ApiKey | None:
        return self._key(await self.db.fetchrow(f"{self._SELECT} WHERE key_hash = $1", key_hash))

    async def revoke(self, name: str, at: datetime) -> None:
        await self.db.execute("UPDATE api_keys SET revoked_at = $2 WHERE name = $1", name, at)
