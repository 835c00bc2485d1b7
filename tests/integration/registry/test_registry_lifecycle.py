"""The whole lifecycle on the real PostgreSQL and Kafka: model → version with a real
TorchScript artifact → alias moves → deployment change → the matching events on
loopline.models.v1 with CloudEvents headers; the gate refuses an unproven candidate
and writes nothing; the audit answers "what served at T"; concurrency holds."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest
from loopline.events.v1 import models_pb2
from loopline_core.errors import FailedPrecondition
from registry_it import (OPERATOR, READER, TRAINER, chunks, fresh_schema, headers, read_models_topic, settings, sha,
                         started, torchscript, unique)

from loopline_registry.bootstrap import wire
from loopline_registry.domain.deployment import TrafficSplit, Variant
from loopline_registry.domain.version import Evaluation, VersionStatus
from loopline_registry.service.commands import (CreateModel, PromoteModelVersion, RegisterModelVersion,
                                                RetireDeployment, SetDeployment, SetVersionStatus, UploadArtifact)
from loopline_registry.service.queries import AuditFilter, Page

SCHEMA = "registry_it_lifecycle"
HOLDOUT = "ab" * 32


@pytest.fixture
async def registry(postgres_dsn: str, kafka_bootstrap: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    await fresh_schema(postgres_dsn, SCHEMA)
    async with started(wire(settings(postgres_dsn, kafka_bootstrap, SCHEMA, tmp_path))) as running:
        yield running


async def register(h, model: str, accuracy: float) -> int:  # type: ignore[no-untyped-def]
    data = torchscript(accuracy)
    artifact = await h.upload_artifact(TRAINER, UploadArtifact("torchscript", sha(data), len(data)), chunks(data))
    version = await h.register_version(TRAINER, RegisterModelVersion(
        model, artifact.sha256, evaluations=(Evaluation(HOLDOUT, {"accuracy": accuracy}),)))
    return version.version


async def with_champion(h, prefix: str, accuracy: float) -> tuple[str, int]:  # type: ignore[no-untyped-def]
    """A new model (named after ``prefix``) whose first version is champion."""
    model = unique(prefix)
    await h.create_model(TRAINER, CreateModel(model))
    version = await register(h, model, accuracy)
    await h.promote(TRAINER, PromoteModelVersion(model, version, "champion"))
    return model, version


async def outbox_count(postgres_dsn: str) -> int:
    conn = await asyncpg.connect(postgres_dsn)
    try:
        return await conn.fetchval(f"SELECT count(*) FROM {SCHEMA}.outbox")
    finally:
        await conn.close()


async def test_lifecycle_publishes_the_matching_events(registry, postgres_dsn: str,  # type: ignore[no-untyped-def]
                                                       kafka_bootstrap: str) -> None:
    h, model = registry.handlers, unique("fraud")
    await h.create_model(TRAINER, CreateModel(model, "it"))
    first = await register(h, model, 0.80)
    await h.promote(TRAINER, PromoteModelVersion(model, first, "champion", "first"))
    second = await register(h, model, 0.90)
    await h.promote(TRAINER, PromoteModelVersion(model, second, "challenger"))
    await h.set_deployment(TRAINER, SetDeployment(model, 0, (TrafficSplit(first, 0.9, Variant.CHAMPION),
                                                             TrafficSplit(second, 0.1, Variant.CANARY)), (), "canary"))
    while await registry.relay.relay_once():
        pass
    records = await read_models_topic(kafka_bootstrap, model)
    types = [headers(r)["ce_type"] for r in records]
    assert types == ["loopline.events.v1.ModelVersionRegistered", "loopline.events.v1.ModelVersionPromoted",
                     "loopline.events.v1.ModelVersionRegistered", "loopline.events.v1.ModelVersionPromoted",
                     "loopline.events.v1.DeploymentChanged"]
    first_headers = headers(records[0])
    assert first_headers["ce_specversion"] == "1.0" and first_headers["ce_source"] == "/loopline/registry"
    assert first_headers["content-type"] == "application/protobuf" and first_headers["ce_subject"] == f"{model}/1"
    assert first_headers["ce_time"].endswith("Z") and first_headers["ce_id"]
    registered = models_pb2.ModelVersionRegistered.FromString(records[0].value)
    assert registered.artifact_uri.startswith("artifact://sha256/") and registered.format == "torchscript"
    changed = models_pb2.DeploymentChanged.FromString(records[-1].value)
    assert [(s.version, s.weight) for s in changed.splits] == [(1, 0.9), (2, 0.1)] and changed.revision == 1
    conn = await asyncpg.connect(postgres_dsn)
    try:
        ids = await conn.fetch(f"SELECT event_id FROM {SCHEMA}.outbox WHERE key = $1 ORDER BY seq", model)
    finally:
        await conn.close()
    assert [r["event_id"] for r in ids] == [headers(r)["ce_id"] for r in records]


async def test_the_gate_refuses_an_unproven_candidate_and_writes_nothing(registry,  # type: ignore[no-untyped-def]
                                                                         postgres_dsn: str) -> None:
    h = registry.handlers
    model, champion = await with_champion(h, "gate", 0.85)
    weak = await register(h, model, 0.855)
    events_before = await outbox_count(postgres_dsn)
    audit_before, _ = await h.list_audit(READER, AuditFilter(model=model), Page(500))
    with pytest.raises(FailedPrecondition, match="does not beat champion"):
        await h.promote(TRAINER, PromoteModelVersion(model, weak, "champion"))
    with pytest.raises(FailedPrecondition, match="promotion gate refused"):
        await h.set_deployment(TRAINER, SetDeployment(model, 0, (TrafficSplit(champion, 0.5, Variant.CHAMPION),
                                                                 TrafficSplit(weak, 0.5, Variant.CANARY))))
    assert await outbox_count(postgres_dsn) == events_before
    assert (await h.list_audit(READER, AuditFilter(model=model), Page(500)))[0] == audit_before
    assert (await h.resolve_alias(READER, model, "champion")).version == champion
    await h.promote(OPERATOR, PromoteModelVersion(model, weak, "champion", "hotfix for incident 7", True))
    entry = (await h.list_audit(READER, AuditFilter(model=model, action="alias.moved"), Page(500)))[0][-1]
    assert (entry.reason, entry.after["gate_overridden"], entry.actor) == ("hotfix for incident 7", True, "it-operator")


async def test_audit_answers_what_served_at_a_time(registry) -> None:  # type: ignore[no-untyped-def]
    h = registry.handlers
    model, first = await with_champion(h, "served", 0.80)
    await h.set_deployment(TRAINER, SetDeployment(model, 0, (TrafficSplit(first, 1.0, Variant.CHAMPION),)))
    only_first = registry.handlers.deps.clock()
    second = await register(h, model, 0.95)
    await h.set_deployment(TRAINER, SetDeployment(model, 1, (TrafficSplit(first, 0.5, Variant.CHAMPION),
                                                             TrafficSplit(second, 0.5, Variant.CANARY))))
    await h.promote(TRAINER, PromoteModelVersion(model, second, "champion"))
    await h.set_deployment(TRAINER, SetDeployment(model, 2, (TrafficSplit(second, 1.0, Variant.CHAMPION),)))
    now = registry.handlers.deps.clock()
    then = await h.served_at(READER, model, only_first)
    assert (then.serving_versions(), then.champion, then.deployment.revision) == ([first], first, 1)
    latest = await h.served_at(READER, model, now)
    assert (latest.serving_versions(), latest.champion, latest.deployment.revision) == ([second], second, 3)


async def test_a_retired_deployment_is_stored_published_and_served_again(registry,  # type: ignore[no-untyped-def]
                                                                         kafka_bootstrap: str) -> None:
    h = registry.handlers
    model, first = await with_champion(h, "retired", 0.80)
    await h.set_deployment(TRAINER, SetDeployment(model, 0, (TrafficSplit(first, 1.0, Variant.CHAMPION),)))
    serving = registry.handlers.deps.clock()
    await asyncio.sleep(0.01)
    retired = await h.retire_deployment(OPERATOR, RetireDeployment(model, 1, "withdrawn"))
    assert (retired.revision, retired.splits, retired.shadow_versions) == (2, (), ())
    assert await h.get_deployment(READER, model) == retired
    assert [d for d in await h.list_deployments(READER) if d.model == model] == [retired]
    assert (await h.served_at(READER, model, serving)).serving_versions() == [first]
    after = await h.served_at(READER, model, registry.handlers.deps.clock())
    assert (after.serving_versions(), after.champion, after.deployment.revision) == ([], first, 2)
    with pytest.raises(FailedPrecondition, match="not deployed"):
        await h.retire_deployment(OPERATOR, RetireDeployment(model, 2, "again"))
    again = await h.set_deployment(TRAINER, SetDeployment(model, 2, (TrafficSplit(first, 1.0, Variant.CHAMPION),)))
    assert again.revision == 3
    while await registry.relay.relay_once():
        pass
    changes = [models_pb2.DeploymentChanged.FromString(r.value) for r in await read_models_topic(kafka_bootstrap, model)
               if headers(r)["ce_type"] == "loopline.events.v1.DeploymentChanged"]
    assert [(c.revision, len(c.splits), c.reason) for c in changes] == [(1, 1, ""), (2, 0, "withdrawn"), (3, 1, "")]


async def test_the_fallback_is_stored_with_each_revision_and_dropped_when_archived(registry) -> None:  # type: ignore
    h = registry.handlers
    model, first = await with_champion(h, "fallback", 0.80)
    await h.set_deployment(TRAINER, SetDeployment(model, 0, (TrafficSplit(first, 1.0, Variant.CHAMPION),)))
    second = await register(h, model, 0.90)
    await h.promote(TRAINER, PromoteModelVersion(model, second, "champion"))
    promoted = await h.set_deployment(TRAINER, SetDeployment(model, 1, (TrafficSplit(second, 1.0, Variant.CHAMPION),)))
    assert promoted.fallback_version == first
    assert (await h.get_deployment(READER, model)).fallback_version == first
    assert (await h.served_at(READER, model, registry.handlers.deps.clock())).deployment.fallback_version == first
    await h.set_version_status(OPERATOR, SetVersionStatus(model, first, VersionStatus.ARCHIVED, "old"))
    after = await h.get_deployment(READER, model)
    assert (after.revision, after.live_versions(), after.fallback_version) == (3, [second], 0)


async def test_a_revision_from_before_fallbacks_were_kept_says_nothing_until_a_promotion(  # type: ignore
        registry, postgres_dsn: str) -> None:
    """Rows written before migration 0003 have no fallback recorded (NULL): the registry does
    not claim "none" for them, so gateways keep the previous champion they saw themselves."""
    h = registry.handlers
    model, first = await with_champion(h, "unrecorded", 0.80)
    await h.set_deployment(TRAINER, SetDeployment(model, 0, (TrafficSplit(first, 1.0, Variant.CHAMPION),)))
    conn = await asyncpg.connect(postgres_dsn)
    try:  # as the migration leaves a deployment written before it
        await conn.execute(f"UPDATE {SCHEMA}.deployments SET fallback_version = NULL WHERE model = $1", model)
    finally:
        await conn.close()
    assert (await h.get_deployment(READER, model)).fallback_version is None
    second = await register(h, model, 0.90)
    canary = (TrafficSplit(first, 0.9, Variant.CHAMPION), TrafficSplit(second, 0.1, Variant.CANARY))
    assert (await h.set_deployment(TRAINER, SetDeployment(model, 1, canary))).fallback_version is None
    await h.promote(TRAINER, PromoteModelVersion(model, second, "champion"))
    promoted = await h.set_deployment(TRAINER, SetDeployment(model, 2, (TrafficSplit(second, 1.0, Variant.CHAMPION),)))
    assert promoted.fallback_version == first


async def test_concurrent_writers_get_distinct_versions_and_one_revision_wins(registry) -> None:  # type: ignore
    h, model = registry.handlers, unique("race")
    await h.create_model(TRAINER, CreateModel(model))
    data = torchscript(0.5)
    artifact = await h.upload_artifact(TRAINER, UploadArtifact("torchscript", sha(data), len(data)), chunks(data))
    versions = await asyncio.gather(*(h.register_version(TRAINER, RegisterModelVersion(model, artifact.sha256))
                                      for _ in range(8)))
    assert sorted(v.version for v in versions) == list(range(1, 9))
    results = await asyncio.gather(*(h.set_deployment(OPERATOR, SetDeployment(
        model, 0, (TrafficSplit(n, 1.0, Variant.CHAMPION),), (), "race", True)) for n in (1, 2, 3)),
        return_exceptions=True)
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(isinstance(r, FailedPrecondition) for r in results if isinstance(r, Exception))


async def test_the_audit_log_is_append_only(registry, postgres_dsn: str) -> None:  # type: ignore[no-untyped-def]
    await registry.handlers.create_model(TRAINER, CreateModel(unique("audit")))
    conn = await asyncpg.connect(postgres_dsn)
    try:
        for statement in (f"UPDATE {SCHEMA}.audit_log SET actor = 'x'", f"DELETE FROM {SCHEMA}.audit_log",
                          f"TRUNCATE {SCHEMA}.audit_log"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                await conn.execute(statement)
    finally:
        await conn.close()


async def test_concurrent_creates_with_one_idempotency_key_create_once_and_replay(registry) -> None:  # type: ignore
    h, model = registry.handlers, unique("once")
    created = await asyncio.gather(*(h.create_model(TRAINER, CreateModel(model, idempotency_key="k-1"))
                                     for _ in range(6)))
    assert {m.name for m in created} == {model}
    data = torchscript(0.25)
    artifact = await h.upload_artifact(TRAINER, UploadArtifact("torchscript", sha(data), len(data)), chunks(data))
    versions = await asyncio.gather(*(h.register_version(TRAINER, RegisterModelVersion(
        model, artifact.sha256, idempotency_key="v-1")) for _ in range(6)))
    assert {v.version for v in versions} == {1}
    audit = await h.list_audit(READER, AuditFilter(model=model), Page(500))
    assert [e.action for e in audit[0]].count("model.created") == 1
