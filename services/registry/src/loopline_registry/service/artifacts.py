"""Artifact uploads (streamed, size-limited, hash-verified, pickle refused) and downloads."""

from __future__ import annotations

from collections.abc import AsyncIterator

from loopline_core.errors import InvalidArgument, NotFound

from loopline_registry.domain.artifact_format import check_content, check_declared_format
from loopline_registry.domain.auth import Caller, Role, require
from loopline_registry.domain.names import artifact_uri, check_sha256
from loopline_registry.domain.version import Artifact
from loopline_registry.service.commands import UploadArtifact
from loopline_registry.service.common import audit
from loopline_registry.service.deps import Deps
from loopline_registry.service.ports import StagedUpload


def _check_header(deps: Deps, header: UploadArtifact) -> tuple[str, str]:
    fmt = check_declared_format(header.format)
    expected = check_sha256(header.sha256, "sha256")
    if header.size_bytes < 0:
        raise InvalidArgument("size_bytes must not be negative", field="size_bytes")
    if header.size_bytes > deps.max_upload_bytes:
        raise InvalidArgument(f"size_bytes {header.size_bytes} is over the upload limit of "
                              f"{deps.max_upload_bytes} bytes", field="size_bytes")
    return fmt, expected


def _check_staged(staged: StagedUpload, fmt: str, expected: str, declared_size: int) -> None:
    if staged.sha256 != expected:
        raise InvalidArgument(f"the uploaded bytes hash to {staged.sha256}, not the declared {expected}",
                              field="sha256")
    if declared_size and staged.size_bytes != declared_size:
        raise InvalidArgument(f"received {staged.size_bytes} bytes, not the declared {declared_size}",
                              field="size_bytes")
    check_content(fmt, staged.head, staged.zip_members)


async def upload_artifact(deps: Deps, caller: Caller, header: UploadArtifact,
                          chunks: AsyncIterator[bytes]) -> Artifact:
    require(caller, Role.TRAINER, "uploading an artifact")
    fmt, expected = _check_header(deps, header)
    staged = await deps.artifacts.stage(chunks, deps.max_upload_bytes)
    try:
        _check_staged(staged, fmt, expected, header.size_bytes)
        await deps.artifacts.commit(staged)
    except BaseException:
        await deps.artifacts.discard(staged)
        raise
    artifact = Artifact(staged.sha256, staged.size_bytes, fmt, artifact_uri(staged.sha256))
    async with deps.uow() as uow:
        if await uow.artifacts.add(artifact, at=deps.clock(), actor=caller.actor):
            await audit(uow, deps, caller, "artifact.uploaded", f"artifacts/{artifact.sha256}",
                        after={"size_bytes": artifact.size_bytes, "format": fmt})
            await uow.commit()
            return artifact
        existing = await uow.artifacts.get(artifact.sha256)
    assert existing is not None
    return existing


async def download_artifact(deps: Deps, caller: Caller, sha256: str) -> tuple[Artifact, AsyncIterator[bytes]]:
    require(caller, Role.READER, "downloading artifacts")
    sha256 = check_sha256(sha256)
    async with deps.uow(readonly=True) as uow:
        artifact = await uow.artifacts.get(sha256)
    if artifact is None:
        raise NotFound(f"artifact {sha256} does not exist", field="sha256")
    return artifact, deps.artifacts.open(sha256, deps.download_chunk_bytes)


async def get_artifact(deps: Deps, caller: Caller, sha256: str) -> Artifact:
    require(caller, Role.READER, "reading artifacts")
    async with deps.uow(readonly=True) as uow:
        artifact = await uow.artifacts.get(check_sha256(sha256))
    if artifact is None:
        raise NotFound(f"artifact {sha256} does not exist", field="sha256")
    return artifact
