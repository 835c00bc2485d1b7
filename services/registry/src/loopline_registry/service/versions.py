"""Handlers for model versions: registration, reads, evaluations and lifecycle status."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from loopline_core.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound

from loopline_registry.domain.auth import Caller, Role, require
from loopline_registry.domain.events import VersionRegistered
from loopline_registry.domain.names import (check_alias, check_labels, check_metrics, check_name,
                                            check_positive, check_sha256, check_text, parse_artifact_uri)
from loopline_registry.domain.version import (ModelVersion, VersionStatus, check_evaluations, check_signature,
                                              transition)
from loopline_registry.service.commands import RecordEvaluation, RegisterModelVersion, SetVersionStatus
from loopline_registry.service.common import audit, emit, load_model, load_version
from loopline_registry.service.deployments import drop_fallback
from loopline_registry.service.deps import Deps
from loopline_registry.service.idempotency import Idempotency
from loopline_registry.service.ports import UnitOfWork
from loopline_registry.service.queries import Page, decode_int_token, encode_token

MAX_PROFILE_BYTES = 16 << 20


def _artifact_sha256(cmd: RegisterModelVersion) -> str:
    from_uri = parse_artifact_uri(cmd.artifact_uri) if cmd.artifact_uri else ""
    given = check_sha256(cmd.artifact_sha256, "artifact_sha256") if cmd.artifact_sha256 else ""
    if not (from_uri or given):
        raise InvalidArgument("artifact_sha256 (or artifact_uri) is required", field="artifact_sha256")
    if from_uri and given and from_uri != given:
        raise InvalidArgument("artifact_uri and artifact_sha256 name different artifacts", field="artifact_uri")
    return from_uri or given


def _checked(cmd: RegisterModelVersion) -> RegisterModelVersion:
    check_name(cmd.model, "model")
    if len(cmd.reference_profile) > MAX_PROFILE_BYTES:
        raise InvalidArgument("reference_profile is larger than 16 MiB", field="reference_profile")
    return replace(cmd, artifact_sha256=_artifact_sha256(cmd), signature=check_signature(cmd.signature),
                   params=check_labels(cmd.params, "params", 256), metrics=check_metrics(cmd.metrics, "metrics"),
                   tags=check_labels(cmd.tags, "tags"), run_id=check_text(cmd.run_id, "run_id", 64),
                   evaluations=check_evaluations(cmd.evaluations))


async def register_version(deps: Deps, caller: Caller, cmd: RegisterModelVersion) -> ModelVersion:
    require(caller, Role.TRAINER, "registering a model version")
    cmd = _checked(cmd)
    once = Idempotency("register_version", caller, cmd.idempotency_key, cmd)
    async with deps.uow() as uow:
        # The model's row lock comes first, so a concurrent retry with the same key waits and then replays.
        await load_model(uow, cmd.model, for_update=True)
        if (previous := await once.previous(uow)) is not None:
            model, _, number = previous.partition("/")
            return await load_version(uow, model, int(number))
        artifact = await uow.artifacts.get(cmd.artifact_sha256)
        if artifact is None:
            raise NotFound(f"artifact {cmd.artifact_sha256} was never uploaded", field="artifact_sha256")
        if cmd.run_id and await uow.runs.get(cmd.run_id) is None:
            raise NotFound(f"training run {cmd.run_id!r} does not exist", field="run_id")
        version = ModelVersion(
            cmd.model, await uow.models.next_version(cmd.model), artifact, cmd.signature, cmd.params, cmd.metrics,
            cmd.tags, VersionStatus.CANDIDATE, cmd.run_id, cmd.reference_profile, cmd.evaluations, deps.clock(),
            caller.actor)
        await uow.versions.add(version)
        target = f"models/{version.model}/versions/{version.version}"
        await audit(uow, deps, caller, "version.registered", target, model=version.model,
                    after={"artifact_sha256": artifact.sha256, "run_id": version.run_id, "status": "candidate"})
        await emit(uow, deps, caller, VersionRegistered(
            version.model, version.version, artifact.uri, artifact.sha256, artifact.format, version.signature,
            version.run_id, version.created_at))
        await once.remember(uow, f"{version.model}/{version.version}", deps.clock())
        await uow.commit()
    return version


async def get_version(deps: Deps, caller: Caller, model: str, version: int) -> ModelVersion:
    require(caller, Role.READER, "reading model versions")
    async with deps.uow(readonly=True) as uow:
        return await load_version(uow, check_name(model, "model"), check_positive(version, "version"))


async def list_versions(deps: Deps, caller: Caller, model: str, page: Page,
                        status: VersionStatus | None = None) -> tuple[list[ModelVersion], str]:
    require(caller, Role.READER, "listing model versions")
    limit = page.limit
    async with deps.uow(readonly=True) as uow:
        await load_model(uow, model)
        found = await uow.versions.list(model, after=decode_int_token(page.token), limit=limit + 1, status=status)
    more = len(found) > limit
    found = found[:limit]
    return found, encode_token(str(found[-1].version)) if more else ""


async def resolve_alias(deps: Deps, caller: Caller, model: str, alias: str) -> ModelVersion:
    require(caller, Role.READER, "resolving aliases")
    async with deps.uow(readonly=True) as uow:
        found = await uow.versions.by_alias(check_name(model, "model"), check_alias(alias))
        if found is None:
            await load_model(uow, model)
            raise NotFound(f"model {model!r} has no alias {alias!r}", field="alias")
        return found


async def record_evaluation(deps: Deps, caller: Caller, cmd: RecordEvaluation) -> ModelVersion:
    require(caller, Role.TRAINER, "recording an evaluation")
    (evaluation,) = check_evaluations([cmd.evaluation])
    async with deps.uow() as uow:
        version = await load_version(uow, check_name(cmd.model, "model"), check_positive(cmd.version, "version"))
        if version.evaluation_on(evaluation.holdout_sha256):
            raise AlreadyExists(f"version {version.version} already has an evaluation on holdout "
                                  f"{evaluation.holdout_sha256}; evaluations are immutable", field="holdout_sha256")
        await uow.versions.add_evaluation(cmd.model, cmd.version, evaluation)
        await audit(uow, deps, caller, "version.evaluated", f"models/{cmd.model}/versions/{cmd.version}",
                    model=cmd.model, after={"holdout_sha256": evaluation.holdout_sha256,
                                            "metrics": dict(evaluation.metrics)})
        await uow.commit()
    return replace(version, evaluations=(*version.evaluations, evaluation))


async def _check_unused(uow: UnitOfWork, aliases: Mapping[str, int], version: ModelVersion) -> None:
    held = sorted(alias for alias, number in aliases.items() if number == version.version)
    deployment = await uow.deployments.get(version.model)
    if held or (deployment and version.version in (*deployment.live_versions(), *deployment.shadow_versions)):
        raise FailedPrecondition(f"version {version.version} is still in use (aliases {held}, or deployed); "
                                 "move the aliases and traffic away before archiving it", field="status")


async def set_version_status(deps: Deps, caller: Caller, cmd: SetVersionStatus) -> ModelVersion:
    require(caller, Role.OPERATOR, "changing a version's status")
    reason = check_text(cmd.reason, "reason", 1024)
    async with deps.uow() as uow:
        model = await load_model(uow, cmd.model, for_update=True)
        version = await load_version(uow, cmd.model, check_positive(cmd.version, "version"))
        changed = transition(version, cmd.status)
        if cmd.status == VersionStatus.ARCHIVED:
            await _check_unused(uow, model.aliases, version)
            if changed is not version:
                await drop_fallback(uow, deps, caller, cmd.model, cmd.version, reason)
        if changed is not version:
            await uow.versions.set_status(cmd.model, cmd.version, cmd.status)
            await audit(uow, deps, caller, "version.status_changed", f"models/{cmd.model}/versions/{cmd.version}",
                        model=cmd.model, before={"status": version.status.value},
                        after={"status": changed.status.value}, reason=reason)
            await uow.commit()
    return changed
