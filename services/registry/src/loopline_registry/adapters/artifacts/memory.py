"""Artifact bytes kept in memory (tests and the memory backend)."""

from __future__ import annotations

import hashlib
import io
import uuid
from collections.abc import AsyncIterator

from loopline_core.errors import FailedPrecondition, NotFound

from loopline_registry.adapters.artifacts.staging import members_of_bytes, spool
from loopline_registry.service.ports import StagedUpload


class MemoryArtifactStore:
    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self._staged: dict[str, bytes] = {}

    async def stage(self, chunks: AsyncIterator[bytes], max_bytes: int) -> StagedUpload:
        sink = io.BytesIO()
        sha256, size, head = await spool(chunks, sink, max_bytes)
        token = uuid.uuid4().hex
        self._staged[token] = sink.getvalue()
        return StagedUpload(token, sha256, size, head, members_of_bytes(head, self._staged[token]))

    async def commit(self, staged: StagedUpload) -> str:
        self.blobs.setdefault(staged.sha256, self._staged.pop(staged.token))
        return staged.sha256

    async def discard(self, staged: StagedUpload) -> None:
        self._staged.pop(staged.token, None)

    def staged_count(self) -> int:
        return len(self._staged)

    async def verify(self, sha256: str) -> None:
        data = self.blobs.get(sha256)
        if data is None or hashlib.sha256(data).hexdigest() != sha256:
            raise FailedPrecondition(f"stored artifact {sha256} is missing or corrupt; upload it again",
                                     field="artifact_sha256")

    async def open(self, sha256: str, chunk_bytes: int) -> AsyncIterator[bytes]:
        data = self.blobs.get(sha256)
        if data is None:
            raise NotFound(f"artifact {sha256} has no stored bytes", field="sha256")
        for start in range(0, len(data), chunk_bytes):
            yield data[start:start + chunk_bytes]
