"""The S3 artifact store against a real S3-compatible server (moto's standalone server over
HTTP): the filesystem store's behaviours, and the registry's upload path on top of it."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import uuid
import zipfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from loopline_core.errors import FailedPrecondition, InvalidArgument, NotFound
from s3_it import moto_server

from loopline_registry.adapters.artifacts.s3 import S3ArtifactStore, make_client
from loopline_registry.bootstrap import wire
from loopline_registry.domain.auth import Caller, Role
from loopline_registry.service.commands import UploadArtifact
from loopline_registry.settings import RegistrySettings

TRAINER = Caller("it-s3-trainer", Role.TRAINER)
READER = Caller("it-s3-reader", Role.READER)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def chunks(data: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


def torchscript_layout(tag: str) -> bytes:
    """A zip laid out like torch.jit.save output (code/, constants.pkl, data.pkl, version)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"{tag}/data.pkl", b"\x80\x02}q\x00.")
        archive.writestr(f"{tag}/constants.pkl", b"\x80\x02).")
        archive.writestr(f"{tag}/code/__torch__/model.py", f"def forward(self, x):\n    return x  # {tag}\n")
        archive.writestr(f"{tag}/version", "3\n")
        archive.writestr(f"{tag}/data/0", uuid.uuid4().bytes * 4096)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with moto_server(tmp_path_factory.mktemp("moto")) as url:
        yield url


@pytest.fixture
def client(endpoint: str) -> Any:
    client = make_client(endpoint_url=endpoint, region="us-east-1", access_key_id="it",
                         secret_access_key="it-secret", max_attempts=2, timeout_s=10)
    yield client
    client.close()


@pytest.fixture
def bucket(client: Any) -> str:
    name = f"loopline-it-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    return name


def keys(client: Any, bucket: str) -> list[str]:
    return [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]


async def test_round_trip_is_content_addressed_and_idempotent(client: Any, bucket: str, tmp_path: Path) -> None:
    store = S3ArtifactStore(client, bucket, prefix="models/", spool_dir=tmp_path, multipart_threshold=5 << 20)
    data = torchscript_layout("m")
    staged = await store.stage(chunks(data), 1 << 22)
    assert staged.zip_members and "m/code/__torch__/model.py" in staged.zip_members
    assert keys(client, bucket) == []  # nothing is visible before commit
    assert await store.commit(staged) == sha(data)
    assert keys(client, bucket) == [f"models/sha256/{sha(data)}"] and list(tmp_path.iterdir()) == []
    again = await store.stage(chunks(data), 1 << 22)
    await store.commit(again)
    assert keys(client, bucket) == [f"models/sha256/{sha(data)}"]
    await store.verify(sha(data))
    assert b"".join([c async for c in store.open(sha(data), 4096)]) == data


async def test_large_uploads_go_multipart_and_read_back(client: Any, bucket: str, tmp_path: Path) -> None:
    store = S3ArtifactStore(client, bucket, spool_dir=tmp_path, multipart_threshold=5 << 20)
    data = os.urandom(7 << 20)  # two parts of at most 5 MiB
    await store.commit(await store.stage(chunks(data, 1 << 16), 8 << 20))
    head = client.head_object(Bucket=bucket, Key=f"sha256/{sha(data)}")
    assert head["ContentLength"] == len(data) and head["Metadata"] == {"sha256": sha(data)}
    assert "-" in head["ETag"]  # a completed multipart upload
    await store.verify(sha(data))


async def test_oversize_is_refused_and_missing_objects_are_clear(client: Any, bucket: str, tmp_path: Path) -> None:
    store = S3ArtifactStore(client, bucket, spool_dir=tmp_path)
    with pytest.raises(InvalidArgument, match="larger than the limit of 250 bytes"):
        await store.stage(chunks(b"y" * 300, 100), 250)
    assert list(tmp_path.iterdir()) == [] and keys(client, bucket) == []
    missing = "e" * 64
    with pytest.raises(NotFound, match=f"artifact {missing} has no stored bytes in bucket '{bucket}'"):
        _ = [c async for c in store.open(missing, 10)]
    with pytest.raises(FailedPrecondition, match="missing or corrupt"):
        await store.verify(missing)
    with pytest.raises(FailedPrecondition, match="missing or corrupt"):
        await store.verify(sha(b""))  # the empty object's hash is not mistaken for a missing object's
    with pytest.raises(FailedPrecondition, match="does not exist; create it or fix artifacts.bucket"):
        await S3ArtifactStore(client, bucket + "-absent", spool_dir=tmp_path).check()


async def test_a_corrupted_object_is_detected(client: Any, bucket: str, tmp_path: Path) -> None:
    store = S3ArtifactStore(client, bucket, spool_dir=tmp_path)
    data = b"\x08\x07\x12\x01t" + b"\x00" * 64
    await store.commit(await store.stage(chunks(data, 8), 1000))
    client.put_object(Bucket=bucket, Key=store.blob_key(sha(data)), Body=b"\x08tampered")
    with pytest.raises(FailedPrecondition, match="missing or corrupt"):
        await store.verify(sha(data))
    with pytest.raises(FailedPrecondition, match="is corrupt; upload it again"):
        _ = [c async for c in store.open(sha(data), 4)]


async def test_the_registry_refuses_bad_uploads_and_serves_good_ones_from_s3(client: Any, bucket: str,
                                                                            tmp_path: Path) -> None:
    store = S3ArtifactStore(client, bucket, prefix="registry/", spool_dir=tmp_path)
    settings = RegistrySettings(backend="memory", relay={"enabled": False}, artifacts={"max_upload_bytes": 1 << 20})
    handlers = wire(settings, artifacts=store).handlers
    refused = [
        (pickle.dumps({"model": "anything"}), "torchscript", None, "pickle-based formats are refused"),
        (torchscript_layout("a"), "torchscript", "0" * 64, "hash to"),
        (b"x" * ((1 << 20) + 1), "onnx", None, "larger than the limit"),
    ]
    for data, fmt, digest, message in refused:
        with pytest.raises(InvalidArgument, match=message):
            await handlers.upload_artifact(TRAINER, UploadArtifact(fmt, digest or sha(data), 0), chunks(data, 1 << 16))
    assert keys(client, bucket) == [] and list(tmp_path.iterdir()) == []
    data = torchscript_layout("good")
    artifact = await handlers.upload_artifact(TRAINER, UploadArtifact("torchscript", sha(data), len(data)),
                                              chunks(data))
    assert keys(client, bucket) == [f"registry/sha256/{sha(data)}"]
    found, body = await handlers.download_artifact(READER, artifact.sha256)
    assert found == artifact and b"".join([c async for c in body]) == data
