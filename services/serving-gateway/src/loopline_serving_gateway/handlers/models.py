"""Server and model metadata in logical names (Triton's own names never leak out)."""

from __future__ import annotations

from typing import Protocol

from tritonclient.grpc import service_pb2 as pb

from loopline_core.errors import NotFound

from loopline_serving_gateway.domain.routing import RoutingTable, triton_name

EXTENSIONS = ["binary_tensor_data", "parameters"]


class TritonMetadata(Protocol):
    async def metadata(self, name: str, version: str) -> pb.ModelMetadataResponse: ...


class ModelCatalog:
    def __init__(self, table: RoutingTable, triton: TritonMetadata, version: str = "0.1.0") -> None:
        self._table = table
        self._triton = triton
        self._version = version
        self.started = False

    def server_ready(self) -> bool:
        return self.started

    def server_metadata(self) -> dict[str, object]:
        return {"name": "loopline-serving-gateway", "version": self._version, "extensions": EXTENSIONS}

    def model_ready(self, model: str, version: str) -> bool:
        route = self._table.find(model)
        if route is None:
            return False
        return not version or (version.isdigit() and int(version) in route.versions())

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
