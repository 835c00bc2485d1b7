"""Artifact uploads: streamed, bounded, hash-verified, pickle refused; content-addressed storage."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from registry_world import READER, TRAINER, World
from loopline_core.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from registry_fakes import chunks_of, onnx_bytes, pickle_bytes, sha, torch_save_zip_bytes, torchscript_bytes

from loopline_registry.adapters.artifacts.filesystem import FilesystemArtifactStore
from loopline_registry.service.commands import UploadArtifact
from loopline_registry.service.queries import AuditFilter, Page


async def _upload(world: World, data: bytes, fmt: str = "torchscript", digest: str | None = None,
                  size: int | None = None):  # type: ignore[no-untyped-def]
    header = UploadArtifact(fmt, digest if digest is not None else sha(data), len(data) if size is None else size)
    return await world.h.upload_artifact(TRAINER, header, chunks_of(data, 1000))


async def test_upload_then_download_by_hash(world: World) -> None:
    data = torchscript_bytes()
    artifact = await _upload(world, data)
    assert (artifact.sha256, artifact.size_bytes) == (sha(data), len(data))
    assert artifact.uri == f"artifact://sha256/{sha(data)}"
    assert await _upload(world, data) == artifact
    found, chunks = await world.h.download_artifact(READER, artifact.sha256)
    assert found == artifact and b"".join([c async for c in chunks]) == data
    onnx = await _upload(world, onnx_bytes(), "onnx")
    assert onnx.format == "onnx"


@pytest.mark.parametrize(("data", "fmt", "digest", "size", "field", "message"), [
    (pickle_bytes(), "torchscript", None, None, "content", "pickle-based formats are refused"),
    (torch_save_zip_bytes(), "torchscript", None, None, "content", "torch-save-pickle"),
    (pickle_bytes(), "pickle", None, None, "format", "not accepted"),
    (torchscript_bytes(), "torchscript", "0" * 64, None, "sha256", "hash to"),
    (torchscript_bytes(), "torchscript", "../../etc/passwd", None, "sha256", "64 hexadecimal"),
    (torchscript_bytes(), "torchscript", None, 10, "size_bytes", "not the declared"),
    (torchscript_bytes(), "onnx", None, None, "content", "declared onnx"),
    (b"x" * 5000, "onnx", None, 0, "content", "larger than the limit of 4096"),
    (b"x" * 10, "onnx", None, 5000, "size_bytes", "over the upload limit"),
])
async def test_bad_uploads_are_refused_and_leave_nothing(data: bytes, fmt: str, digest: str | None, size: int | None,
                                                         field: str, message: str) -> None:
    world = World(artifacts={"max_upload_bytes": 4096})
    with pytest.raises(InvalidArgument, match=message) as error:
        await _upload(world, data, fmt, digest, size)
    assert error.value.field == field
    assert world.store.blobs == {} and world.store.staged_count() == 0
    assert (await world.h.list_audit(READER, AuditFilter(), Page()))[0] == []


async def test_unknown_hashes_and_missing_roles(world: World) -> None:
    with pytest.raises(NotFound, match="does not exist"):
        await world.h.download_artifact(READER, "e" * 64)
    with pytest.raises(PermissionDenied, match="uploading an artifact needs the trainer role"):
        await world.h.upload_artifact(READER, UploadArtifact("onnx", sha(b"x"), 1), chunks_of(b"x"))


async def test_filesystem_store_is_content_addressed_and_contained(tmp_path: Path) -> None:
    store = FilesystemArtifactStore(tmp_path / "artifacts")
    data = torchscript_bytes()
    staged = await store.stage(chunks_of(data, 100), 1 << 20)
    assert staged.zip_members and any("/code/" in m for m in staged.zip_members)
    await store.commit(staged)
    path = store.blob_path(sha(data))
    assert path == tmp_path / "artifacts" / "sha256" / sha(data)[:2] / sha(data)
    assert path.read_bytes() == data and not os.access(path, os.W_OK) or os.geteuid() == 0
    assert list((tmp_path / "artifacts" / "staging").iterdir()) == []
    await store.verify(sha(data))
    assert b"".join([c async for c in store.open(sha(data), 64)]) == data
    for bad in ("../" * 3 + "etc/passwd", "%2e%2e%2f", "/etc/passwd", "a" * 63 + "\x00"):
        with pytest.raises(InvalidArgument):
            store.blob_path(bad)


async def test_filesystem_store_refuses_oversize_and_detects_corruption(tmp_path: Path) -> None:
    store = FilesystemArtifactStore(tmp_path)
    with pytest.raises(InvalidArgument, match="larger than the limit"):
        await store.stage(chunks_of(b"y" * 300, 100), 250)
    assert list((tmp_path / "staging").iterdir()) == []
    data = onnx_bytes()
    await store.commit(await store.stage(chunks_of(data), 1000))
    path = store.blob_path(sha(data))
    path.chmod(0o644)
    path.write_bytes(b"\x08tampered")
    with pytest.raises(FailedPrecondition, match="missing or corrupt"):
        await store.verify(sha(data))
    with pytest.raises(FailedPrecondition, match="corrupt"):
        _ = [c async for c in store.open(sha(data), 4)]
