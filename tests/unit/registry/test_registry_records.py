"""Datasets, training runs and lineage; API keys; the audit trail."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from registry_world import ADMIN, READER, TRAINER, World
from loopline_core.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, Unauthenticated

from loopline_registry.domain.auth import Role
from loopline_registry.domain.runs import RunInput, RunStatus
from loopline_registry.service.auth import seed_api_keys
from loopline_registry.service.commands import (CreateApiKey, CreateDataset, CreateDatasetVersion, FinishRun,
                                                LogRunMetrics, RegisterModelVersion, StartRun)
from loopline_registry.service.queries import AuditFilter, Page

TRAIN_HASH, HOLDOUT_HASH = "aa" * 32, "bb" * 32


async def test_lineage_links_version_run_and_dataset_versions(world: World) -> None:
    await world.model()
    await world.h.create_dataset(TRAINER, CreateDataset("transactions", "card transactions"))
    window = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))
    train = await world.h.create_dataset_version(TRAINER, CreateDatasetVersion(
        "transactions", TRAIN_HASH, 1000, *window, "SELECT * FROM tx WHERE month = 1"))
    holdout = await world.h.create_dataset_version(TRAINER, CreateDatasetVersion("transactions", HOLDOUT_HASH, 200))
    assert (train.version, holdout.version) == (1, 2)
    run = await world.h.start_run(TRAINER, StartRun("fraud", {"lr": "0.01"}, "git:abc123", {"python": "3.11"}, (
        RunInput("transactions", 1, "train"), RunInput("transactions", 2, "holdout"))))
    await world.h.log_metrics(TRAINER, LogRunMetrics(run.id, (("loss", 0, 0.9), ("loss", 1, 0.5))))
    done = await world.h.finish_run(TRAINER, FinishRun(run.id, RunStatus.COMPLETED))
    assert done.status == RunStatus.COMPLETED and done.ended_at == world.clock()
    with pytest.raises(FailedPrecondition, match="already completed"):
        await world.h.finish_run(TRAINER, FinishRun(run.id, RunStatus.FAILED))
    version = await world.h.register_version(TRAINER, RegisterModelVersion("fraud", await world.upload(),
                                                                           run_id=run.id))
    lineage = await world.h.get_lineage(READER, "fraud", version.version)
    assert lineage.run is not None and [p.value for p in lineage.run.metric_history] == [0.9, 0.5]
    assert [(i.role, i.dataset_version.content_sha256) for i in lineage.inputs] == [
        ("train", TRAIN_HASH), ("holdout", HOLDOUT_HASH)]


async def test_runs_refuse_unknown_inputs_and_bad_values(world: World) -> None:
    await world.model()
    with pytest.raises(NotFound, match="dataset 'nope'"):
        await world.h.start_run(TRAINER, StartRun("fraud", inputs=(RunInput("nope", 1, "train"),)))
    with pytest.raises(InvalidArgument, match="input role"):
        await world.h.start_run(TRAINER, StartRun("fraud", inputs=(RunInput("x", 1, "pickle"),)))
    run = await world.h.start_run(TRAINER, StartRun("fraud", run_id="trainer-run-7"))
    with pytest.raises(AlreadyExists):
        await world.h.start_run(TRAINER, StartRun("fraud", run_id="trainer-run-7"))
    with pytest.raises(InvalidArgument, match="finite"):
        await world.h.log_metrics(TRAINER, LogRunMetrics(run.id, (("loss", 0, float("inf")),)))
    with pytest.raises(InvalidArgument, match="not a valid name"):
        await world.h.create_dataset(TRAINER, CreateDataset("../etc"))
    with pytest.raises(InvalidArgument, match="64 hexadecimal"):
        await world.h.create_dataset_version(TRAINER, CreateDatasetVersion("x", "zz"))


async def test_api_keys_are_stored_hashed_and_can_be_revoked(world: World) -> None:
    await seed_api_keys(world.registry.handlers.deps, [("root", Role.ADMIN, "root-secret-0123456789")])
    auth = world.h.auth
    assert (await auth.authenticate("root-secret-0123456789")).role == Role.ADMIN
    with pytest.raises(Unauthenticated, match="missing API key"):
        await auth.authenticate(None)
    with pytest.raises(Unauthenticated, match="unknown or has been revoked"):
        await auth.authenticate("guess")
    key, secret = await world.h.create_api_key(ADMIN, CreateApiKey("ci", "trainer"))
    assert secret.startswith("llk_") and secret not in repr(key)
    stored = world.registry.handlers.deps
    async with stored.uow(readonly=True) as uow:
        assert (await uow.api_keys.get("ci")).key_hash != secret  # type: ignore[union-attr]
    assert (await auth.authenticate(secret)).actor == "ci"
    await world.h.revoke_api_key(ADMIN, "ci")
    with pytest.raises(Unauthenticated):
        await auth.authenticate(secret)
    with pytest.raises(InvalidArgument, match="role 'root'"):
        await world.h.create_api_key(ADMIN, CreateApiKey("x", "root"))


async def test_every_change_is_audited_with_actor_and_trace(world: World) -> None:
    await world.model()
    await world.version()
    entries, token = await world.h.list_audit(READER, AuditFilter(model="fraud"), Page(1))
    assert [e.action for e in entries] == ["model.created"] and token
    rest, _ = await world.h.list_audit(READER, AuditFilter(model="fraud"), Page(10, token))
    assert [e.action for e in rest] == ["version.registered"]
    assert all(e.actor == TRAINER.actor for e in entries + rest)
    with pytest.raises(InvalidArgument, match="since is after until"):
        await world.h.list_audit(READER, AuditFilter(since=world.clock.advance(5), until=world.clock.advance(-10)),
                                 Page())
