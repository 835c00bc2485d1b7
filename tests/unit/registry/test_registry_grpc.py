"""The gRPC edge over the real ServiceHost: same handlers, status codes, streaming artifacts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
from registry_edge_host import KEYS, Running, running_registry
from google.protobuf.timestamp_pb2 import Timestamp
from loopline.common.v1 import common_pb2
from loopline.events.v1 import models_pb2
from loopline.registry.v1 import registry_pb2 as pb
from loopline.registry.v1 import registry_pb2_grpc
from registry_fakes import pickle_bytes, sha, torchscript_bytes

HOLDOUT = "ab" * 32


@pytest.fixture(scope="module")
async def registry() -> AsyncIterator[Running]:
    async with running_registry() as running:
        yield running


@pytest.fixture
async def stub(registry: Running) -> AsyncIterator[registry_pb2_grpc.RegistryServiceStub]:
    async with grpc.aio.insecure_channel(registry.grpc) as channel:
        yield registry_pb2_grpc.RegistryServiceStub(channel)


def key(role: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {KEYS[role]}"),)


def upload_messages(data: bytes, digest: str | None = None, fmt: str = "torchscript",
                    chunk: int = 1000) -> Iterator[pb.UploadArtifactRequest]:
    yield pb.UploadArtifactRequest(header=pb.ArtifactHeader(format=fmt, sha256=digest or sha(data),
                                                            size_bytes=len(data)))
    for start in range(0, len(data), chunk):
        yield pb.UploadArtifactRequest(chunk=data[start:start + chunk])


async def code_of(call) -> grpc.StatusCode:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await call
    return error.value.code()


async def test_authentication_and_roles(stub: registry_pb2_grpc.RegistryServiceStub) -> None:
    assert await code_of(stub.ListModels(pb.ListModelsRequest())) == grpc.StatusCode.UNAUTHENTICATED
    denied = stub.CreateModel(pb.CreateModelRequest(name="grpc-denied"), metadata=key("reader"))
    assert await code_of(denied) == grpc.StatusCode.PERMISSION_DENIED
    created = stub.CreateApiKey(pb.CreateApiKeyRequest(name="grpc-ci", role="trainer"), metadata=key("trainer"))
    assert await code_of(created) == grpc.StatusCode.PERMISSION_DENIED


async def test_lifecycle_over_grpc(registry: Running, stub: registry_pb2_grpc.RegistryServiceStub) -> None:
    trainer, operator = key("trainer"), key("operator")
    await stub.CreateModel(pb.CreateModelRequest(name="grpc-fraud", gate=pb.GatePolicy(metric="auc", margin=0.0)),
                           metadata=trainer)
    data = torchscript_bytes("grpc")
    artifact = await stub.UploadArtifact(upload_messages(data), metadata=trainer)
    downloaded = b"".join([m.chunk async for m in stub.DownloadArtifact(
        pb.DownloadArtifactRequest(sha256=artifact.sha256), metadata=trainer)])
    assert downloaded == data
    version = await stub.RegisterModelVersion(pb.RegisterModelVersionRequest(
        model="grpc-fraud", artifact_sha256=artifact.sha256,
        evaluations=[pb.Evaluation(holdout_sha256=HOLDOUT, metrics={"auc": 0.7})]), metadata=trainer)
    assert (version.version, version.status) == (1, pb.VERSION_STATUS_CANDIDATE)
    await stub.PromoteModelVersion(pb.PromoteModelVersionRequest(model="grpc-fraud", version=1, alias="champion"),
                                   metadata=trainer)
    resolved = await stub.ResolveAlias(pb.ResolveAliasRequest(model="grpc-fraud", alias="champion"), metadata=trainer)
    assert resolved.version == 1 and resolved.status == pb.VERSION_STATUS_PRODUCTION
    split = models_pb2.TrafficSplit(version=1, weight=1.0, variant=common_pb2.VARIANT_CHAMPION)
    deployment = await stub.SetDeployment(pb.SetDeploymentRequest(model="grpc-fraud", splits=[split]),
                                          metadata=operator)
    assert deployment.revision == 1
    # the registry always says what the fallback is (0: none), so a gateway can tell it from an older registry's silence
    assert deployment.HasField("fallback_version") and deployment.fallback_version == 0
    stale = stub.SetDeployment(pb.SetDeploymentRequest(model="grpc-fraud", splits=[split]), metadata=operator)
    assert await code_of(stale) == grpc.StatusCode.FAILED_PRECONDITION
    at = Timestamp()
    at.GetCurrentTime()
    served = await stub.GetServedAt(pb.GetServedAtRequest(model="grpc-fraud", at=at), metadata=trainer)
    assert list(served.serving_versions) == [1] and served.champion_version == 1
    entries = await stub.ListAuditEntries(pb.ListAuditEntriesRequest(model="grpc-fraud"), metadata=trainer)
    assert [e.action for e in entries.entries][-1] == "deployment.changed"
    refused = stub.RetireDeployment(pb.RetireDeploymentRequest(model="grpc-fraud", expected_revision=1, reason="x"),
                                    metadata=trainer)
    assert await code_of(refused) == grpc.StatusCode.PERMISSION_DENIED
    retired = await stub.RetireDeployment(pb.RetireDeploymentRequest(
        model="grpc-fraud", expected_revision=1, reason="withdrawn"), metadata=operator)
    assert (retired.revision, list(retired.splits), retired.reason) == (2, [], "withdrawn")
    listed = await stub.ListDeployments(pb.ListDeploymentsRequest(), metadata=trainer)
    assert [(d.revision, list(d.splits)) for d in listed.deployments if d.model == "grpc-fraud"] == [(2, [])]
    again = stub.RetireDeployment(pb.RetireDeploymentRequest(model="grpc-fraud", expected_revision=2, reason="x"),
                                  metadata=operator)
    assert await code_of(again) == grpc.StatusCode.FAILED_PRECONDITION


async def test_bad_input_gets_a_clear_status_and_writes_nothing(stub: registry_pb2_grpc.RegistryServiceStub) -> None:
    trainer = key("trainer")
    for name in ("../etc", "%2e%2e%2f", "/abs", "a\x00b", "file://x"):
        call = stub.CreateModel(pb.CreateModelRequest(name=name), metadata=trainer)
        assert await code_of(call) == grpc.StatusCode.INVALID_ARGUMENT
    assert await code_of(stub.UploadArtifact(upload_messages(pickle_bytes()), metadata=trainer)) == \
        grpc.StatusCode.INVALID_ARGUMENT
    assert await code_of(stub.UploadArtifact(upload_messages(torchscript_bytes("z"), "1" * 64), metadata=trainer)) == \
        grpc.StatusCode.INVALID_ARGUMENT
    big = b"\x08" + b"0" * (1 << 17)
    assert await code_of(stub.UploadArtifact(upload_messages(big, fmt="onnx", chunk=1 << 14), metadata=trainer)) == \
        grpc.StatusCode.INVALID_ARGUMENT
    headless = iter([pb.UploadArtifactRequest(chunk=b"abc")])
    assert await code_of(stub.UploadArtifact(headless, metadata=trainer)) == grpc.StatusCode.INVALID_ARGUMENT
    unknown = stub.GetModel(pb.GetModelRequest(name="never-made"), metadata=trainer)
    assert await code_of(unknown) == grpc.StatusCode.NOT_FOUND
    bad_uri = stub.RegisterModelVersion(pb.RegisterModelVersionRequest(
        model="never-made", artifact_uri="file:///etc/passwd"), metadata=trainer)
    assert await code_of(bad_uri) == grpc.StatusCode.INVALID_ARGUMENT
    listed = await stub.ListModels(pb.ListModelsRequest(name_prefix="never"), metadata=trainer)
    assert list(listed.models) == []


def test_a_fallback_not_recorded_is_left_unset_not_sent_as_none() -> None:
    from datetime import UTC, datetime

    from loopline_registry.domain.deployment import Deployment, TrafficSplit, Variant
    from loopline_registry.entrypoints.grpc.convert import deployment_pb

    at, splits = datetime(2026, 1, 1, tzinfo=UTC), (TrafficSplit(2, 1.0, Variant.CHAMPION),)
    assert not deployment_pb(Deployment("m", 3, splits, (), at, "ops", "", None)).HasField("fallback_version")
    stated = deployment_pb(Deployment("m", 3, splits, (), at, "ops", "", 0))
    assert stated.HasField("fallback_version") and stated.fallback_version == 0
