"""What the detector needs to know about a model version, from the registry.

``GrpcVersions`` calls RegistryService.GetModelVersion with ``authorization: Bearer
<key>``; versions are immutable, so ``CachedVersions`` keeps each answer for the life
of the process (a miss for an unknown version is not cached: it may be registered
later). ``InMemoryVersions`` is the fake for unit tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import grpc
from loopline.registry.v1 import registry_pb2 as rpb
from loopline.registry.v1 import registry_pb2_grpc as rpb_grpc
from loopline_core.errors import InvalidArgument, NotFound, Unavailable
from loopline_core.profiles.reference import ReferenceProfile

from loopline_drift_detector.domain.catalogue import ValidationMetrics


@dataclass(frozen=True)
class VersionInfo:
    model: str
    version: int
    feature_names: tuple[str, ...]
    #: None when the version was registered without one: data drift is off for it.
    profile: ReferenceProfile | None
    validation: ValidationMetrics | None


class VersionSource(Protocol):
    async def get(self, model: str, version: int) -> VersionInfo: ...


def version_info(message: rpb.ModelVersion) -> VersionInfo:
    profile = None
    if message.reference_profile:
        try:
            profile = ReferenceProfile.from_bytes(message.reference_profile)
        except (InvalidArgument, ValueError, KeyError, TypeError) as exc:
            raise InvalidArgument(f"reference profile of {message.model} v{message.version} is unreadable: {exc}",
                                  field="reference_profile") from exc
    return VersionInfo(message.model, message.version, tuple(message.signature.feature_names), profile,
                       ValidationMetrics.from_metrics(dict(message.metrics)))


class GrpcVersions:
    def __init__(self, channel: grpc.aio.Channel, api_key: str, timeout_s: float = 10.0) -> None:
        self._stub = rpb_grpc.RegistryServiceStub(channel)
        self._metadata = (("authorization", f"Bearer {api_key}"),) if api_key else ()
        self._timeout = timeout_s

    async def get(self, model: str, version: int) -> VersionInfo:
        try:
            reply = await self._stub.GetModelVersion(rpb.GetModelVersionRequest(model=model, version=version),
                                                     metadata=self._metadata, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                raise NotFound(f"model version {model} v{version} is not registered") from exc
            raise Unavailable(f"registry GetModelVersion({model}, {version}): {exc.code().name} "
                              f"{exc.details()}") from exc
        return version_info(reply)


class InMemoryVersions:
    def __init__(self, versions: Mapping[tuple[str, int], VersionInfo] | None = None) -> None:
        self.versions = dict(versions or {})
        self.calls = 0

    async def get(self, model: str, version: int) -> VersionInfo:
        self.calls += 1
        if (model, version) not in self.versions:
            raise NotFound(f"model version {model} v{version} is not registered")
        return self.versions[(model, version)]


class CachedVersions:
    def __init__(self, source: VersionSource) -> None:
        self._source = source
        self._cache: dict[tuple[str, int], VersionInfo] = {}

    async def get(self, model: str, version: int) -> VersionInfo:
        key = (model, version)
        if key not in self._cache:
            self._cache[key] = await self._source.get(model, version)
        return self._cache[key]
