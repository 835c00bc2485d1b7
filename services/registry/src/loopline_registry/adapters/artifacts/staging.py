"""What every artifact store shares: reading an upload stream into a hashed, bounded spool."""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import AsyncIterator
from typing import BinaryIO

from loopline_core.errors import InvalidArgument

from loopline_registry.domain.artifact_format import HEAD_BYTES, ZIP_MAGIC


def too_large(limit: int) -> InvalidArgument:
    return InvalidArgument(f"the upload is larger than the limit of {limit} bytes", field="content")


async def spool(chunks: AsyncIterator[bytes], sink: BinaryIO, max_bytes: int) -> tuple[str, int, bytes]:
    """Copy ``chunks`` into ``sink``; returns (sha256, size, head). Stops at ``max_bytes``."""
    digest = hashlib.sha256()
    size = 0
    head = b""
    async for chunk in chunks:
        size += len(chunk)
        if size > max_bytes:
            raise too_large(max_bytes)
        if len(head) < HEAD_BYTES:
            head += chunk[:HEAD_BYTES - len(head)]
        digest.update(chunk)
        sink.write(chunk)
    return digest.hexdigest(), size, head


def zip_members(head: bytes, source: BinaryIO | str) -> tuple[str, ...] | None:
    """Member names when the bytes are a zip archive, else None."""
    if not head.startswith(ZIP_MAGIC):
        return None
    try:
        with zipfile.ZipFile(source) as archive:
            return tuple(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return None


def members_of_bytes(head: bytes, data: bytes) -> tuple[str, ...] | None:
    return zip_members(head, io.BytesIO(data))
