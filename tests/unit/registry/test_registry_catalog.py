"""Models and versions through the handlers, wired by bootstrap with in-memory fakes."""

from __future__ import annotations

import pytest
from registry_world import HOLDOUT, READER, TRAINER, World
from loopline_core.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied

from loopline_registry.domain.version import Evaluation, Signature, TensorSpec, VersionStatus
from loopline_registry.service.commands import CreateModel, RecordEvaluation, RegisterModelVersion
from loopline_registry.service.queries import AuditFilter, Page


async def test_versions_are_numbered_per_model_and_announced(world: World) -> None:
    await world.model("fraud")
    await world.model("churn")
    assert [await world.version("fraud"), await world.version("fraud"), await world.version("churn")] == [1, 2, 1]
    assert await world.relay() == ["ModelVersionRegistered"] * 3
    first = world.publisher.published[0]
    assert (first.key, first.subject, first.topic) == ("fraud", "fraud/1", "loopline.models.v1")
    assert first.event_id == "00000000-0000-4000-8000-000000000001"  # from the id port, stored in the outbox


async def test_registration_keeps_what_the_trainer_sent(world: World) -> None:
    await world.model()
    sha256 = await world.upload()
    signature = Signature((TensorSpec("features", "FP32", (-1, 4)),), (TensorSpec("probs", "FP32", (-1, 2)),),
                          ("a", "b", "c", "d"))
    version = await world.h.register_version(TRAINER, RegisterModelVersion(
        "fraud", artifact_uri=f"artifact://sha256/{sha256}", signature=signature, params={"lr": "0.1"},
        metrics={"loss": 0.2}, tags={"team": "risk"}, reference_profile=b"\x01\x02",
        evaluations=(Evaluation(HOLDOUT, {"accuracy": 0.9}),)))
    found = await world.h.get_version(READER, "fraud", version.version)
    assert found == version
    assert (found.status, found.artifact.format, found.signature, found.reference_profile) == (
        VersionStatus.CANDIDATE, "torchscript", signature, b"\x01\x02")


@pytest.mark.parametrize(("command", "error", "field"), [
    (RegisterModelVersion("fraud", "0" * 64), NotFound, "artifact_sha256"),
    (RegisterModelVersion("fraud", artifact_uri="file:///etc/passwd"), InvalidArgument, "artifact_uri"),
    (RegisterModelVersion("fraud", artifact_uri="../../../etc/passwd"), InvalidArgument, "artifact_uri"),
    (RegisterModelVersion("fraud", artifact_uri="artifact://sha256/%2e%2e%2f"), InvalidArgument, "artifact_uri"),
    (RegisterModelVersion("../fraud", "0" * 64), InvalidArgument, "model"),
    (RegisterModelVersion("nope", "0" * 64), NotFound, "model"),
    (RegisterModelVersion("fraud", "not-a-hash"), InvalidArgument, "artifact_sha256"),
    (RegisterModelVersion("fraud", "0" * 64, run_id="missing-run"), NotFound, "artifact_sha256"),
    (RegisterModelVersion("fraud", "0" * 64, tags={"k": "v\x00"}), InvalidArgument, "tags.k"),
    (RegisterModelVersion("fraud", "0" * 64, signature=Signature((TensorSpec("x", "PICKLE", (1,)),))),
     InvalidArgument, "signature.inputs.datatype"),
])
async def test_bad_registrations_are_refused_and_write_nothing(world: World, command: RegisterModelVersion,
                                                               error: type[Exception], field: str) -> None:
    await world.model()
    audit_before, _ = await world.h.list_audit(READER, AuditFilter(), Page(500))
    with pytest.raises(error) as raised:
        await world.h.register_version(TRAINER, command)
    assert raised.value.field == field  # type: ignore[attr-defined]
    audit_after, _ = await world.h.list_audit(READER, AuditFilter(), Page(500))
    assert audit_after == audit_before
    versions, _ = await world.h.list_versions(READER, "fraud", Page())
    assert versions == [] and world.registry.relay is not None and await world.relay() == []


async def test_unknown_run_is_refused(world: World) -> None:
    await world.model()
    with pytest.raises(NotFound, match="training run 'missing-run'"):
        await world.h.register_version(TRAINER, RegisterModelVersion("fraud", await world.upload(),
                                                                     run_id="missing-run"))


async def test_model_names_are_unique_and_creates_are_idempotent(world: World) -> None:
    first = await world.h.create_model(TRAINER, CreateModel("fraud", idempotency_key="k1"))
    assert await world.h.create_model(TRAINER, CreateModel("fraud", idempotency_key="k1")) == first
    with pytest.raises(FailedPrecondition, match="different request"):
        await world.h.create_model(TRAINER, CreateModel("fraud", "other", idempotency_key="k1"))
    with pytest.raises(AlreadyExists, match="already exists"):
        await world.h.create_model(TRAINER, CreateModel("fraud"))


async def test_version_registration_is_idempotent(world: World) -> None:
    await world.model()
    sha256 = await world.upload()
    first = await world.h.register_version(TRAINER, RegisterModelVersion("fraud", sha256, idempotency_key="r1"))
    again = await world.h.register_version(TRAINER, RegisterModelVersion("fraud", sha256, idempotency_key="r1"))
    assert again == first
    assert await world.relay() == ["ModelVersionRegistered"]


async def test_readers_read_and_cannot_write(world: World) -> None:
    with pytest.raises(PermissionDenied, match="creating a model needs the trainer role"):
        await world.h.create_model(READER, CreateModel("fraud"))
    await world.model()
    assert (await world.h.get_model(READER, "fraud")).name == "fraud"


async def test_models_and_versions_page(world: World) -> None:
    for name in ("a", "b", "c", "d", "e"):
        await world.model(name)
    found, token = await world.h.list_models(READER, Page(2))
    assert [m.name for m in found] == ["a", "b"] and token
    found, token = await world.h.list_models(READER, Page(2, token))
    assert [m.name for m in found] == ["c", "d"]
    found, token = await world.h.list_models(READER, Page(2, token))
    assert [m.name for m in found] == ["e"] and token == ""
    assert [m.name for m in (await world.h.list_models(READER, Page(), "c"))[0]] == ["c"]
    with pytest.raises(InvalidArgument, match="page_token"):
        await world.h.list_models(READER, Page(2, "!!!"))
    for _ in range(3):
        await world.version("a")
    versions, token = await world.h.list_versions(READER, "a", Page(2))
    assert [v.version for v in versions] == [1, 2]
    assert [v.version for v in (await world.h.list_versions(READER, "a", Page(2, token)))[0]] == [3]


async def test_evaluations_are_recorded_once_per_holdout(world: World) -> None:
    await world.model()
    number = await world.version()
    updated = await world.h.record_evaluation(TRAINER, RecordEvaluation("fraud", number,
                                                                         Evaluation(HOLDOUT, {"accuracy": 0.8})))
    assert updated.evaluation_on(HOLDOUT) == {"accuracy": 0.8}
    with pytest.raises(AlreadyExists, match="immutable"):
        await world.h.record_evaluation(TRAINER, RecordEvaluation("fraud", number,
                                                                  Evaluation(HOLDOUT, {"accuracy": 0.99})))
