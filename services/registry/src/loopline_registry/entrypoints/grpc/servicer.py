"""loopline.registry.v1.RegistryService over the handlers; errors mapped by core's interceptor."""

from __future__ import annotations

import grpc
from loopline.registry.v1 import registry_pb2, registry_pb2_grpc

from loopline_registry.entrypoints.grpc.models_rpc import ModelsRpc
from loopline_registry.entrypoints.grpc.records_rpc import RecordsRpc
from loopline_registry.entrypoints.grpc.release_rpc import ReleaseRpc
from loopline_registry.service.handlers import Handlers

SERVICE_NAME = registry_pb2.DESCRIPTOR.services_by_name["RegistryService"].full_name


class RegistryServicer(ModelsRpc, ReleaseRpc, RecordsRpc, registry_pb2_grpc.RegistryServiceServicer):
    pass


def registration(handlers: Handlers):  # type: ignore[no-untyped-def]
    def register(server: grpc.aio.Server) -> None:
        registry_pb2_grpc.add_RegistryServiceServicer_to_server(RegistryServicer(handlers), server)

    return register
