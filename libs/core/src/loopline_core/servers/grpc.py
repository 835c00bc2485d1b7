"""gRPC server factory: health service, error table and tracing for every service."""

from __future__ import annotations

from collections.abc import Callable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from opentelemetry.instrumentation.grpc import aio_server_interceptor

from loopline_core.edges.grpc import ErrorMappingInterceptor

Register = Callable[[grpc.aio.Server], None]


class GrpcServer:
    """A grpc.aio server whose health status follows the service's readiness."""

    def __init__(self, host: str, port: int, registrations: list[Register], service_names: list[str]) -> None:
        self._address = f"{host}:{port}"
        self._registrations = registrations
        self._service_names = ["", *service_names]
        self.port = port

    async def start(self) -> None:
        # grpc.aio binds to the running loop, so the server is made here, not in __init__.
        self.server = grpc.aio.server(interceptors=[aio_server_interceptor(), ErrorMappingInterceptor()])
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        for register in self._registrations:
            register(self.server)
        self.port = self.server.add_insecure_port(self._address)
        await self.server.start()

    async def set_serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in self._service_names:
            await self.health.set(name, status)

    async def stop(self, grace_s: float) -> None:
        await self.set_serving(False)
        await self.server.stop(grace_s)
