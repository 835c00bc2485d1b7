"""The S3 artifact store without a server: key building, prefix checks, and how botocore
failures become Loopline errors (botocore's Stubber answers in place of S3)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, NoCredentialsError, ReadTimeoutError
from botocore.exceptions import ClientError, ResponseStreamingError
from botocore.stub import Stubber
from loopline_core.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from registry_fakes import chunks_of, pickle_bytes, sha, torchscript_bytes

from loopline_registry.adapters.artifacts.s3 import S3ArtifactStore, make_client
from loopline_registry.adapters.artifacts.s3_keys import blob_key, check_prefix, translate


def _client():  # type: ignore[no-untyped-def]
    return make_client(endpoint_url="http://127.0.0.1:9", region="us-east-1", access_key_id="k",
                       secret_access_key="s", max_attempts=1, timeout_s=1)


def _client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"{code} said the server"},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject")


def test_keys_are_built_only_from_a_verified_hash() -> None:
    digest = "AB" * 32
    assert blob_key("", digest) == "sha256/" + "ab" * 32
    assert blob_key("team/models/", "0" * 64) == "team/models/sha256/" + "0" * 64
    for bad in ("../" * 3 + "etc/passwd", "%2e%2e%2f", "/etc/passwd", "a" * 63 + "\x00", "a" * 65, ""):
        with pytest.raises(InvalidArgument, match="64 hexadecimal"):
            blob_key("", bad)


@pytest.mark.parametrize("prefix", ["", "loopline/", "a/b-c/d_e.f/"])
def test_good_prefixes(prefix: str) -> None:
    assert check_prefix(prefix) == prefix


@pytest.mark.parametrize("prefix", ["noslash", "/abs/", "../up/", "a/../b/", "a//", "sp ace/", "./", "x" * 600 + "/"])
def test_bad_prefixes_are_refused_with_the_reason(prefix: str) -> None:
    with pytest.raises(InvalidArgument, match="prefix") as error:
        check_prefix(prefix)
    assert error.value.field == "prefix"


@pytest.mark.parametrize(("error", "kind", "message"), [
    (_client_error("NoSuchKey", 404), NotFound, "s3://b/k does not exist"),
    (_client_error("404", 404), NotFound, "does not exist"),
    (_client_error("NoSuchBucket", 404), FailedPrecondition, "bucket 'b' does not exist"),
    (_client_error("AccessDenied", 403), FailedPrecondition, "check artifacts.access_key_id"),
    (_client_error("SignatureDoesNotMatch", 403), FailedPrecondition, "refused access"),
    (_client_error("InternalError", 500), Unavailable, "retry later"),
    (_client_error("SlowDown", 503), Unavailable, "SlowDown"),
    (_client_error("Whatever", 502), Unavailable, "502"),
    (_client_error("InvalidRequest", 400), FailedPrecondition, "InvalidRequest (HTTP 400) InvalidRequest said"),
    (EndpointConnectionError(endpoint_url="http://x"), Unavailable, "cannot be reached"),
    (ConnectTimeoutError(endpoint_url="http://x"), Unavailable, "ConnectTimeoutError"),
    (ReadTimeoutError(endpoint_url="http://x"), Unavailable, "cannot be reached"),
    (ResponseStreamingError(error="reset"), Unavailable, "cannot be reached"),
    (NoCredentialsError(), FailedPrecondition, "no credentials"),
])
def test_s3_failures_map_to_loopline_errors(error: Exception, kind: type, message: str) -> None:
    found = translate(error, bucket="b", key="k")  # type: ignore[arg-type]
    assert type(found) is kind and message in str(found)
    assert found.retryable is (kind is Unavailable)


def test_a_bare_404_on_the_bucket_names_the_bucket_setting() -> None:
    found = translate(_client_error("404", 404), bucket="b")
    assert isinstance(found, FailedPrecondition) and found.field == "bucket" and "artifacts.bucket" in str(found)


async def test_a_refused_or_oversized_upload_leaves_no_spool_and_touches_no_bucket(tmp_path: Path) -> None:
    store = S3ArtifactStore(_client(), "b", spool_dir=tmp_path)
    with Stubber(store.client):  # any call to S3 would fail: nothing is expected
        with pytest.raises(InvalidArgument, match="larger than the limit of 250"):
            await store.stage(chunks_of(b"y" * 300, 100), 250)
        assert list(tmp_path.iterdir()) == []
        staged = await store.stage(chunks_of(pickle_bytes()), 1 << 20)
        assert (staged.sha256, staged.zip_members) == (sha(pickle_bytes()), None)
        await store.discard(staged)
        assert list(tmp_path.iterdir()) == []
        zipped = await store.stage(chunks_of(torchscript_bytes()), 1 << 20)
        assert zipped.zip_members and "m/code/__torch__/model.py" in zipped.zip_members
        await store.discard(zipped)


async def test_errors_from_the_server_surface_as_loopline_errors(tmp_path: Path) -> None:
    store = S3ArtifactStore(_client(), "b", prefix="p/", spool_dir=tmp_path)
    digest = "c" * 64
    with Stubber(store.client) as stub:
        stub.add_client_error("get_object", "NoSuchKey", http_status_code=404,
                              expected_params={"Bucket": "b", "Key": f"p/sha256/{digest}"})
        with pytest.raises(NotFound, match=f"artifact {digest} has no stored bytes in bucket 'b'"):
            _ = [c async for c in store.open(digest, 10)]
        stub.add_client_error("get_object", "NoSuchKey", http_status_code=404)
        with pytest.raises(FailedPrecondition, match="missing or corrupt"):
            await store.verify(digest)
        stub.add_client_error("get_object", "ServiceUnavailable", http_status_code=503)
        with pytest.raises(Unavailable, match="retry later"):
            await store.verify(digest)
        stub.add_client_error("head_bucket", "NoSuchBucket", http_status_code=404)
        with pytest.raises(FailedPrecondition, match="create it or fix artifacts.bucket"):
            await store.check()


async def test_an_unreachable_endpoint_is_unavailable(tmp_path: Path) -> None:
    store = S3ArtifactStore(_client(), "b", spool_dir=tmp_path)
    with pytest.raises(Unavailable, match="cannot be reached"):
        await store.check()
    staged = await store.stage(chunks_of(b"kept"), 100)
    with pytest.raises(Unavailable):
        await store.commit(staged)
    assert list(tmp_path.iterdir()) == []


async def test_spool_files_left_by_a_crash_are_swept(tmp_path: Path) -> None:
    store = S3ArtifactStore(_client(), "b", spool_dir=tmp_path)
    assert store.sweep_spool() == 0
    stale, fresh, other = tmp_path / ("a" * 32 + ".part"), tmp_path / ("b" * 32 + ".part"), tmp_path / "notes.part"
    for path in (stale, fresh, other):
        path.write_bytes(b"half an upload")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    os.utime(other, (time.time() - 7200, time.time() - 7200))
    assert store.sweep_spool(older_than_s=3600) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([fresh.name, other.name])


def test_the_registry_settings_choose_the_artifact_store(tmp_path) -> None:
    from loopline_registry.adapters.artifacts.filesystem import FilesystemArtifactStore
    from loopline_registry.adapters.artifacts.s3 import S3ArtifactStore
    from loopline_registry.bootstrap import _artifact_store
    from loopline_registry.settings import ArtifactSettings, RegistrySettings

    components: list = []
    default = _artifact_store(RegistrySettings(run_dir=tmp_path), components)
    assert isinstance(default, FilesystemArtifactStore) and components == []
    s3 = _artifact_store(RegistrySettings(run_dir=tmp_path, artifacts=ArtifactSettings(
        backend="s3", endpoint_url="http://127.0.0.1:9", bucket="models", prefix="team-a/",
        access_key_id="key", secret_access_key="secret-secret")), components)
    assert isinstance(s3, S3ArtifactStore) and s3.bucket == "models"
    assert [c.name for c in components] == ["artifact-store"]
