"""Content-addressed artifacts on a local filesystem.

Layout: ``<root>/sha256/<first two hex digits>/<hex>`` for blobs and
``<root>/staging/<random>.part`` for uploads in flight. Paths are built only from a
verified 64-digit hex hash or a token made here, never from caller input, and are
checked to stay under the root. Blobs are written once (renamed into place after
fsync) and made read-only.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from loopline_core.errors import FailedPrecondition, NotFound

from loopline_registry.adapters.artifacts.staging import spool, zip_members
from loopline_registry.domain.names import check_sha256
from loopline_registry.service.ports import StagedUpload

_TOKEN = re.compile(r"[0-9a-f]{32}")


class FilesystemArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _inside(self, path: Path) -> Path:
        if self.root not in path.resolve().parents:
            raise FailedPrecondition("artifact path escapes the store", field="sha256")
        return path

    def blob_path(self, sha256: str) -> Path:
        sha256 = check_sha256(sha256)
        return self._inside(self.root / "sha256" / sha256[:2] / sha256)

    def _staging_path(self, token: str) -> Path:
        assert _TOKEN.fullmatch(token), "staging tokens are made by this store"
        return self._inside(self.root / "staging" / f"{token}.part")

    async def stage(self, chunks: AsyncIterator[bytes], max_bytes: int) -> StagedUpload:
        token = uuid.uuid4().hex
        path = self._staging_path(token)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with path.open("wb") as sink:
                sha256, size, head = await spool(chunks, sink, max_bytes)
                sink.flush()
                os.fsync(sink.fileno())
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return StagedUpload(token, sha256, size, head, zip_members(head, str(path)))

    async def commit(self, staged: StagedUpload) -> str:
        source, target = self._staging_path(staged.token), self.blob_path(staged.sha256)
        if target.exists():
            source.unlink(missing_ok=True)
            return staged.sha256
        target.parent.mkdir(parents=True, exist_ok=True)
        source.chmod(0o444)
        os.replace(source, target)
        return staged.sha256

    async def discard(self, staged: StagedUpload) -> None:
        self._staging_path(staged.token).unlink(missing_ok=True)

    def _hash(self, path: Path) -> str:
        digest = hashlib.sha256()
        with path.open("rb") as source:
            while block := source.read(1 << 20):
                digest.update(block)
        return digest.hexdigest()

    async def verify(self, sha256: str) -> None:
        path = self.blob_path(sha256)
        found = await asyncio.to_thread(self._hash, path) if path.exists() else ""
        if found != sha256:
            raise FailedPrecondition(f"stored artifact {sha256} is missing or corrupt; upload it again",
                                     field="artifact_sha256")

    async def open(self, sha256: str, chunk_bytes: int) -> AsyncIterator[bytes]:
        path = self.blob_path(sha256)
        if not path.exists():
            raise NotFound(f"artifact {sha256} has no stored bytes", field="sha256")
        digest = hashlib.sha256()
        with path.open("rb") as source:
            while chunk := await asyncio.to_thread(source.read, chunk_bytes):
                digest.update(chunk)
                yield chunk
        if digest.hexdigest() != sha256:
            raise FailedPrecondition(f"stored artifact {sha256} is corrupt; upload it again", field="sha256")
