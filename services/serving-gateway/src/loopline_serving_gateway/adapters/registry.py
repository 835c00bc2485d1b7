"""Registry adapter: desired deployments, version signatures and artifacts over gRPC.

Every call carries ``authorization: Bearer <key>``. ``InMemoryRegistry`` implements
the same port for unit tests.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Protocol

import grpc
from loopline.registry.v1 import registry_pb2 as rpb
from loopline.registry.v1 import registry_pb2_grpc as rpb_grpc

from loopline_core.errors import NotFound, Unavailable

from loopline_serving_gateway.domain.deployments import Deployment, Split
from loopline_serving_gateway.domain.routing import Variant


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class VersionInfo:
    model: str
    version: int
    sha256: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


class RegistryPort(Protocol):
    async def list_deployments(self) -> list[Deployment]: ...
    async def get_deployment(self, model: str) -> Deployment | None: ...
    async def get_version(self, model: str, version: int) -> VersionInfo: ...
    async def download(self, sha256: str) -> bytes: ...


def deployment_from_proto(message: rpb.Deployment) -> Deployment:
    splits = tuple(Split(s.version, s.weight, Variant(s.variant) if s.variant else Variant.CHAMPION)
                   for s in message.splits)
    fallback = message.fallback_version if message.HasField("fallback_version") else None
    return Deployment(message.model, message.revision, splits, tuple(message.shadow_versions), fallback)


class GrpcRegistry:
    def __init__(self, channel: grpc.aio.Channel, api_key: str, timeout_s: float = 10.0) -> None:
        self._stub = rpb_grpc.RegistryServiceStub(channel)
        self._metadata = (("authorization", f"Bearer {api_key}"),) if api_key else ()
        self._timeout = timeout_s

    async def list_deployments(self) -> list[Deployment]:
        try:
            reply = await self._stub.ListDeployments(rpb.ListDeploymentsRequest(), metadata=self._metadata,
                                                     timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            raise Unavailable(f"registry ListDeployments failed: {exc.code().name}: {exc.details()}") from exc
        return [deployment_from_proto(d) for d in reply.deployments]

    async def get_deployment(self, model: str) -> Deployment | None:
        try:
            reply = await self._stub.GetDeployment(rpb.GetDeploymentRequest(model=model), metadata=self._metadata,
                                                   timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise Unavailable(f"registry GetDeployment({model}) failed: {exc.details()}") from exc
        return deployment_from_proto(reply)

    async def get_version(self, model: str, version: int) -> VersionInfo:
        try:
            reply = await self._stub.GetModelVersion(rpb.GetModelVersionRequest(model=model, version=version),
                                                     metadata=self._metadata, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                raise NotFound(f"version {version} of {model} is not registered") from exc
            raise Unavailable(f"registry GetModelVersion({model}, {version}) failed: {exc.details()}") from exc
        sig = reply.signature
        return VersionInfo(model, version, reply.artifact.sha256,
                           tuple(TensorSpec(t.name, t.datatype, tuple(t.shape)) for t in sig.inputs),
                           tuple(TensorSpec(t.name, t.datatype, tuple(t.shape)) for t in sig.outputs))

    async def download(self, sha256: str) -> bytes:
        parts: list[bytes] = []
        try:
            stream = self._stub.DownloadArtifact(rpb.DownloadArtifactRequest(sha256=sha256), metadata=self._metadata,
                                                 timeout=120.0)
            async for chunk in stream:
                parts.append(chunk.chunk)
        except grpc.aio.AioRpcError as exc:
            raise Unavailable(f"registry DownloadArtifact({sha256[:12]}) failed: {exc.details()}") from exc
        return b"".join(parts)


@dataclass
class InMemoryRegistry:
    deployments: dict[str, Deployment] = field(default_factory=dict)
    versions: dict[tuple[str, int], VersionInfo] = field(default_factory=dict)
    artifacts: dict[str, bytes] = field(default_factory=dict)

    def add_version(self, info: VersionInfo, artifact: bytes) -> None:
        self.versions[(info.model, info.version)] = info
        self.artifacts[hashlib.sha256(artifact).hexdigest()] = artifact

    async def list_deployments(self) -> list[Deployment]:
        return list(self.deployments.values())

    async def get_deployment(self, model: str) -> Deployment | None:
        return self.deployments.get(model)

    async def get_version(self, model: str, version: int) -> VersionInfo:
        try:
            return self.versions[(model, version)]
        except KeyError:
            raise NotFound(f"version {version} of {model} is not registered") from None

    async def download(self, sha256: str) -> bytes:
        try:
            return self.artifacts[sha256]
        except KeyError:
            raise NotFound(f"artifact {sha256[:12]} does not exist") from None
