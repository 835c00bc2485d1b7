"""Server and model metadata in logical names (Triton's own names never leak out)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from tritonclient.grpc import service_pb2 as pb

from loopline_core.errors import NotFound

from loopline_serving_gateway.domain.routing import RoutingTable, triton_name

EXTENSIONS = ["binary_tensor_data", "parameters"]


class TritonMetadata(Protocol):
    async def metadata(self, name: str, version: str) -> pb.ModelMetadataResponse: ...
    async def is_ready(self, name: str, version: str = "") -> bool: ...


class ModelCatalog:
    def __init__(self, table: RoutingTable, triton: TritonMetadata, version: str = "0.1.0", *,
                 on_unready: Callable[[str], None] = lambda name: None) -> None:
        self._table = table
        self._triton = triton
        self._version = version
        self.started = False
        #: Told each routed Triton model found not READY (the reconciler loads it again).
        self._on_unready = on_unready

    def server_ready(self) -> bool:
        return self.started

    def server_metadata(self) -> dict[str, object]:
        return {"name": "loopline-serving-gateway", "version": self._version, "extensions": EXTENSIONS}

    async def model_ready(self, model: str, version: str) -> bool:
        """Whether a request for ``model`` would be answered now: it is deployed and Triton reports
        READY the version asked for, or, with none asked for, each version taking traffic or the
        one its failures fall back to (a broken canary's requests are answered by the fallback)."""
        route = self._table.find(model)
        if route is None:
            return False
        if version:
            return version.isdigit() and int(version) in route.versions() and await self._ready(model, int(version))
        for target in route.targets:
            if target.weight <= 0 or await self._ready(model, target.version):
                continue
            fallback = route.fallback_for(target)
            if fallback is None or not await self._ready(model, fallback.version):
                return False
        return True

    async def _ready(self, model: str, version: int) -> bool:
        name = triton_name(model, version)
        if await self._triton.is_ready(name, str(version)):
            return True
        self._on_unready(name)
        return False

    async def metadata(self, model: str, version: str) -> pb.ModelMetadataResponse:
        route = self._table.get(model)
        if version:
            if not version.isdigit():
                raise NotFound(f"version {version!r} of {model} is not deployed", field="version")
            served = route.explicit(int(version)).version
        else:
            served = route.targets[0].version
        reply = await self._triton.metadata(triton_name(model, served), str(served))
        reply.name = model
        del reply.versions[:]
        reply.versions.extend(str(v) for v in sorted(route.versions()))
        return reply
