"""Run stores: PostgreSQL (the trainer schema) and in memory (unit tests, demos)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import asyncpg

from loopline_core.errors import Unavailable

from loopline_trainer.domain.runs import Run, RunRequest, RunStatus


class MemoryRunStore:
    def __init__(self) -> None:
        self._runs: dict[str, Run] = {}

    async def add(self, run: Run) -> Run:
        stored = self._runs.setdefault(run.run_id, copy.deepcopy(run))
        return copy.deepcopy(stored)

    async def get(self, run_id: str) -> Run | None:
        return copy.deepcopy(self._runs.get(run_id))

    async def save(self, run: Run) -> None:
        self._runs[run.run_id] = copy.deepcopy(run)

    async def unfinished(self) -> list[Run]:
        return [copy.deepcopy(r) for r in self._runs.values() if r.status in (RunStatus.QUEUED, RunStatus.RUNNING)]


def _request_doc(request: RunRequest) -> str:
    return json.dumps({"model": request.model, "request_id": request.request_id, "reason": request.reason,
                       "params": request.params, "traceparent": request.traceparent,
                       "data_since": request.data_since.isoformat() if request.data_since else None})


def _run(row: asyncpg.Record) -> Run:
    doc: dict[str, Any] = json.loads(row["request"])
    since = doc.get("data_since")
    request = RunRequest(doc["model"], doc["request_id"], doc.get("reason", ""), doc.get("params", {}),
                         datetime.fromisoformat(since) if since else None, doc.get("traceparent", ""))
    return Run(row["run_id"], request, RunStatus(row["status"]), json.loads(row["metrics"]), row["version"],
               row["error"], row["gate_passed"], row["gate_reason"], row["started_at"], row["finished_at"])


_COLUMNS = "run_id, status, request::text AS request, metrics::text AS metrics, version, error, gate_passed, " \
           "gate_reason, started_at, finished_at"


class PostgresRunStore:
    def __init__(self, pool: Callable[[], asyncpg.Pool]) -> None:
        self._pool = pool

    async def _fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        try:
            return list(await self._pool().fetch(sql, *args))
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as exc:
            raise Unavailable(f"PostgreSQL: {exc}") from exc

    async def add(self, run: Run) -> Run:
        await self._fetch(
            "INSERT INTO training_runs (run_id, request_id, model, status, request) VALUES ($1, $2, $3, $4, $5) "
            "ON CONFLICT (run_id) DO NOTHING", run.run_id, run.request.request_id, run.model, run.status.value,
            _request_doc(run.request))
        stored = await self.get(run.run_id)
        assert stored is not None
        return stored

    async def get(self, run_id: str) -> Run | None:
        rows = await self._fetch(f"SELECT {_COLUMNS} FROM training_runs WHERE run_id = $1", run_id)
        return _run(rows[0]) if rows else None

    async def save(self, run: Run) -> None:
        await self._fetch(
            "UPDATE training_runs SET status = $2, metrics = $3::jsonb, version = $4, error = $5, gate_passed = $6, "
            "gate_reason = $7, started_at = $8, finished_at = $9 WHERE run_id = $1", run.run_id, run.status.value,
            json.dumps(run.metrics), run.version, run.error, run.gate_passed, run.gate_reason, run.started_at,
            run.finished_at)

    async def unfinished(self) -> list[Run]:
        rows = await self._fetch(f"SELECT {_COLUMNS} FROM training_runs WHERE status IN ('queued', 'running') "
                                 "ORDER BY started_at NULLS FIRST, run_id")
        return [_run(row) for row in rows]
