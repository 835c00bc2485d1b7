"""Content-addressed artifacts in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW).

Layout: ``s3://<bucket>/<prefix>sha256/<hex>``. An upload is spooled to a local file
(``<spool_dir>/<token>.part``) while it is hashed and bounded; only ``commit``, after
the handler has checked the hash, size and format, puts it under its hash key, so a
half-sent or refused upload never becomes visible in the bucket. A PUT (or a
completed multipart upload) is atomic in S3, and botocore sends a payload checksum
that the server checks, so the object under a hash key is whole or absent.

boto3 is used from worker threads (``asyncio.to_thread``): its clients are thread-safe,
it handles multipart transfers and retries with backoff, and it is the library the
moto test server is built against.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from loopline_core.errors import FailedPrecondition, NotFound

from loopline_registry.adapters.artifacts.s3_keys import blob_key, check_prefix, translate
from loopline_registry.adapters.artifacts.staging import spool, zip_members
from loopline_registry.service.ports import StagedUpload

_TOKEN = re.compile(r"[0-9a-f]{32}")
_T = TypeVar("_T")


def make_client(*, endpoint_url: str | None, region: str, access_key_id: str | None,
                secret_access_key: str | None, max_attempts: int = 3, timeout_s: float = 30.0) -> Any:
    """A boto3 S3 client; path-style addressing so MinIO and moto work without DNS tricks."""
    config = Config(s3={"addressing_style": "path"}, retries={"max_attempts": max_attempts, "mode": "standard"},
                    connect_timeout=min(timeout_s, 5.0), read_timeout=timeout_s, max_pool_connections=16)
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint_url, region_name=region, aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key, config=config)


class S3ArtifactStore:
    def __init__(self, client: Any, bucket: str, *, prefix: str = "", spool_dir: Path | None = None,
                 multipart_threshold: int = 64 << 20, upload_concurrency: int = 4) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = check_prefix(prefix)
        self.spool_dir = (spool_dir or Path(tempfile.gettempdir()) / "loopline-registry-spool").resolve()
        self._transfer = TransferConfig(multipart_threshold=multipart_threshold,
                                        multipart_chunksize=multipart_threshold, max_concurrency=upload_concurrency,
                                        use_threads=upload_concurrency > 1)

    def blob_key(self, sha256: str) -> str:
        return blob_key(self.prefix, sha256)

    def _spool_path(self, token: str) -> Path:
        assert _TOKEN.fullmatch(token), "spool tokens are made by this store"
        return self.spool_dir / f"{token}.part"

    async def _call(self, key: str | None, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> _T:
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except (BotoCoreError, ClientError) as error:
            raise translate(error, bucket=self.bucket, key=key) from error

    async def check(self) -> None:
        """Fails with a clear error when the bucket is missing or the credentials are wrong."""
        await self._call(None, self.client.head_bucket, Bucket=self.bucket)

    async def stage(self, chunks: AsyncIterator[bytes], max_bytes: int) -> StagedUpload:
        token = uuid.uuid4().hex
        path = self._spool_path(token)
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        try:
            with path.open("wb") as sink:
                sha256, size, head = await spool(chunks, sink, max_bytes)
            members = zip_members(head, str(path))
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return StagedUpload(token, sha256, size, head, members)

    async def _exists(self, key: str) -> bool:
        try:
            await self._call(key, self.client.head_object, Bucket=self.bucket, Key=key)
        except NotFound:
            return False
        return True

    async def commit(self, staged: StagedUpload) -> str:
        source, key = self._spool_path(staged.token), self.blob_key(staged.sha256)
        try:
            if not await self._exists(key):
                await self._call(key, self.client.upload_file, str(source), self.bucket, key,
                                 ExtraArgs={"Metadata": {"sha256": staged.sha256}}, Config=self._transfer)
        finally:
            source.unlink(missing_ok=True)
        return staged.sha256

    async def discard(self, staged: StagedUpload) -> None:
        self._spool_path(staged.token).unlink(missing_ok=True)

    def sweep_spool(self, older_than_s: float = 3600.0) -> int:
        """Removes spool files a crashed process left behind; returns how many. Run at startup."""
        if not self.spool_dir.is_dir():
            return 0
        cutoff, removed = time.time() - older_than_s, 0
        for path in self.spool_dir.glob("*.part"):
            if _TOKEN.fullmatch(path.stem) and path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    async def _read(self, key: str, chunk_bytes: int) -> AsyncIterator[bytes]:
        response = await self._call(key, self.client.get_object, Bucket=self.bucket, Key=key)
        body = response["Body"]
        try:
            while chunk := await self._call(key, body.read, chunk_bytes):
                yield chunk
        finally:
            body.close()

    async def verify(self, sha256: str) -> None:
        key = self.blob_key(sha256)
        digest = hashlib.sha256()
        found = ""
        try:
            async for chunk in self._read(key, 1 << 20):
                digest.update(chunk)
            found = digest.hexdigest()
        except NotFound:
            pass
        if found != sha256:
            raise FailedPrecondition(f"stored artifact {sha256} is missing or corrupt; upload it again",
                                     field="artifact_sha256")

    async def open(self, sha256: str, chunk_bytes: int) -> AsyncIterator[bytes]:
        key = self.blob_key(sha256)
        digest = hashlib.sha256()
        try:
            async for chunk in self._read(key, chunk_bytes):
                digest.update(chunk)
                yield chunk
        except NotFound:
            raise NotFound(f"artifact {sha256} has no stored bytes in bucket {self.bucket!r}",
                           field="sha256") from None
        if digest.hexdigest() != sha256:
            raise FailedPrecondition(f"stored artifact {sha256} is corrupt; upload it again", field="sha256")

    async def close(self) -> None:
        await asyncio.to_thread(self.client.close)
