"""PostgreSQL repositories of models, versions, aliases, deployments and artifacts."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from loopline_registry.adapters.postgres.rows import (deployment_of, dumps, model_of, signature_json, splits_json,
                                                      version_of)
from loopline_registry.domain.deployment import Deployment
from loopline_registry.domain.model import RegisteredModel
from loopline_registry.domain.version import Artifact, Evaluation, ModelVersion, VersionStatus
from loopline_registry.service.ports import AliasMove

if TYPE_CHECKING:
    from loopline_registry.adapters.postgres.uow import PostgresUnitOfWork

_MODEL = """SELECT m.*, COALESCE((SELECT jsonb_object_agg(a.alias, a.version) FROM aliases a
            WHERE a.model = m.name), '{}')::text AS aliases FROM models m"""
_VERSION = """SELECT v.*, a.size_bytes, a.format, a.uri,
            COALESCE((SELECT jsonb_agg(jsonb_build_object('h', e.holdout_sha256, 'm', e.metrics) ORDER BY e.seq)
                      FROM evaluations e WHERE e.model = v.model AND e.version = v.version), '[]')::text
            AS evaluations
            FROM model_versions v JOIN artifacts a ON a.sha256 = v.artifact_sha256"""


class _Repo:
    def __init__(self, uow: PostgresUnitOfWork) -> None:
        self._uow = uow

    @property
    def db(self):  # type: ignore[no-untyped-def]
        return self._uow.conn


class Models(_Repo):
    async def add(self, model: RegisteredModel) -> None:
        gate = model.gate
        await self.db.execute(
            "INSERT INTO models (name, description, task, tags, gate_metric, gate_higher_is_better, gate_margin,"
            " created_at, created_by) VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $8, $9)",
            model.name, model.description, model.task, dumps(dict(model.tags)), gate and gate.metric,
            gate and gate.higher_is_better, gate and gate.margin, model.created_at, model.created_by)

    async def get(self, name: str, *, for_update: bool = False) -> RegisteredModel | None:
        row = await self.db.fetchrow(
            f"{_MODEL} WHERE m.name = $1"
            + (" FOR UPDATE OF m" if for_update else ""), name)
        return model_of(row) if row else None

    async def list(self, *, after: str, limit: int, name_prefix: str = "") -> list[RegisteredModel]:
        rows = await self.db.fetch(
            f"{_MODEL} WHERE m.name > $1 AND starts_with(m.name, $2)"
            " ORDER BY m.name LIMIT $3", after, name_prefix, limit)
        return [model_of(r) for r in rows]

    async def next_version(self, name: str) -> int:
        return await self.db.fetchval(
            "UPDATE models SET last_version = last_version + 1 WHERE name = $1 RETURNING last_version", name)


class Versions(_Repo):
    async def add(self, version: ModelVersion) -> None:
        await self.db.execute(
            "INSERT INTO model_versions (model, version, artifact_sha256, signature, params, metrics, tags, status,"
            " run_id, reference_profile, created_at, created_by)"
            " VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, $6::jsonb, $7::jsonb, $8, NULLIF($9, ''), $10, $11, $12)",
            version.model, version.version, version.artifact.sha256, signature_json(version.signature),
            dumps(dict(version.params)), dumps(dict(version.metrics)), dumps(dict(version.tags)),
            version.status.value, version.run_id, version.reference_profile, version.created_at, version.created_by)
        for evaluation in version.evaluations:
            await self.add_evaluation(version.model, version.version, evaluation)

    async def get(self, model: str, version: int) -> ModelVersion | None:
        row = await self.db.fetchrow(f"{_VERSION} WHERE v.model = $1 AND v.version = $2", model, version)
        return version_of(row) if row else None

    async def by_alias(self, model: str, alias: str) -> ModelVersion | None:
        """One round trip: the hot path of the serving gateway."""
        row = await self.db.fetchrow(
            f"{_VERSION} JOIN aliases l ON l.model = v.model AND l.version = v.version"
            " WHERE l.model = $1 AND l.alias = $2", model, alias)
        return version_of(row) if row else None

    async def list(self, model: str, *, after: int, limit: int,
                   status: VersionStatus | None = None) -> list[ModelVersion]:
        rows = await self.db.fetch(
            f"{_VERSION} WHERE v.model = $1 AND v.version > $2 AND ($3::text IS NULL OR v.status = $3)"
            " ORDER BY v.version LIMIT $4", model, after, status.value if status else None, limit)
        return [version_of(r) for r in rows]

    async def set_status(self, model: str, version: int, status: VersionStatus) -> None:
        await self.db.execute("UPDATE model_versions SET status = $3 WHERE model = $1 AND version = $2",
                              model, version, status.value)

    async def add_evaluation(self, model: str, version: int, evaluation: Evaluation) -> None:
        await self.db.execute(
            "INSERT INTO evaluations (model, version, holdout_sha256, metrics) VALUES ($1, $2, $3, $4::jsonb)",
            model, version, evaluation.holdout_sha256, dumps(dict(evaluation.metrics)))


class Aliases(_Repo):
    async def move(self, move: AliasMove) -> None:
        await self.db.execute(
            "INSERT INTO aliases (model, alias, version) VALUES ($1, $2, $3)"
            " ON CONFLICT (model, alias) DO UPDATE SET version = EXCLUDED.version",
            move.model, move.alias, move.version)
        await self.db.execute(
            "INSERT INTO alias_history (model, alias, version, previous_version, moved_at, actor, reason,"
            " gate_overridden, rollback) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            move.model, move.alias, move.version, move.previous_version, move.at, move.actor, move.reason,
            move.gate_overridden, move.rollback)

    async def history(self, model: str, alias: str) -> list[AliasMove]:
        rows = await self.db.fetch(
            "SELECT model, alias, version, previous_version, moved_at, actor, reason, gate_overridden, rollback"
            " FROM alias_history WHERE model = $1 AND alias = $2 ORDER BY seq", model, alias)
        return [AliasMove(*r.values()) for r in rows]

    async def at(self, model: str, alias: str, moment: datetime) -> int | None:
        return await self.db.fetchval(
            "SELECT version FROM alias_history WHERE model = $1 AND alias = $2 AND moved_at <= $3"
            " ORDER BY moved_at DESC, seq DESC LIMIT 1", model, alias, moment)


class Deployments(_Repo):
    _COLUMNS = "model, revision, splits, shadow_versions, updated_at, updated_by, reason, fallback_version"

    async def get(self, model: str, *, for_update: bool = False) -> Deployment | None:
        row = await self.db.fetchrow(f"SELECT {self._COLUMNS} FROM deployments WHERE model = $1"
                                     + (" FOR UPDATE" if for_update else ""), model)
        return deployment_of(row) if row else None

    async def save(self, d: Deployment, *, traceparent: str = "") -> None:
        values = (d.model, d.revision, splits_json(d.splits), list(d.shadow_versions), d.updated_at, d.updated_by,
                  d.reason, d.fallback_version)
        await self.db.execute(
            f"INSERT INTO deployments ({self._COLUMNS}) VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7, $8)"
            " ON CONFLICT (model) DO UPDATE SET"
            " revision = EXCLUDED.revision, splits = EXCLUDED.splits, shadow_versions = EXCLUDED.shadow_versions,"
            " updated_at = EXCLUDED.updated_at, updated_by = EXCLUDED.updated_by, reason = EXCLUDED.reason,"
            " fallback_version = EXCLUDED.fallback_version", *values)
        await self.db.execute(
            f"INSERT INTO deployment_history ({self._COLUMNS}, traceparent)"
            " VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7, $8, $9)", *values, traceparent)

    async def list(self) -> list[Deployment]:
        rows = await self.db.fetch(f"SELECT {self._COLUMNS} FROM deployments ORDER BY model")
        return [deployment_of(r) for r in rows]

    async def at(self, model: str, moment: datetime) -> Deployment | None:
        row = await self.db.fetchrow(
            f"SELECT {self._COLUMNS} FROM deployment_history WHERE model = $1 AND updated_at <= $2"
            " ORDER BY updated_at DESC, revision DESC LIMIT 1", model, moment)
        return deployment_of(row) if row else None

    async def traceparent(self, model: str, revision: int) -> str:
        found = await self.db.fetchval("SELECT traceparent FROM deployment_history WHERE model = $1 AND revision = $2",
                                       model, revision)
        return found or ""


class Artifacts(_Repo):
    async def add(self, artifact: Artifact, *, at: datetime, actor: str) -> bool:
        added = await self.db.fetchval(
            "INSERT INTO artifacts (sha256, size_bytes, format, uri, created_at, created_by)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (sha256) DO NOTHING RETURNING true",
            artifact.sha256, artifact.size_bytes, artifact.format, artifact.uri, at, actor)
        return bool(added)

    async def get(self, sha256: str) -> Artifact | None:
        row = await self.db.fetchrow("SELECT sha256, size_bytes, format, uri FROM artifacts WHERE sha256 = $1", sha256)
        return Artifact(*row.values()) if row else None
