"""Client channels to peer services, with OpenTelemetry's gRPC client interceptors so
that registry and collector calls continue the run's trace."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.instrumentation.grpc import aio_client_interceptors

from loopline_core.errors import Unavailable
from loopline_core.servers.host import Component


class TracedChannel:
    def __init__(self, name: str, target: str, *, required: bool = True) -> None:
        self.name = name
        self.target = target
        self._required = required
        self._channel: grpc.aio.Channel | None = None

    def __call__(self) -> grpc.aio.Channel:
        if self._channel is None:
            raise Unavailable(f"{self.name} channel is not open yet")
        return self._channel

    async def start(self) -> None:
        self._channel = grpc.aio.insecure_channel(self.target, interceptors=aio_client_interceptors())

    async def stop(self) -> None:
        if self._channel is not None:
            await self._channel.close()

    async def check(self) -> None:
        try:
            reply = await health_pb2_grpc.HealthStub(self()).Check(health_pb2.HealthCheckRequest(), timeout=1.0)
        except grpc.aio.AioRpcError as exc:
            raise Unavailable(f"{self.name} at {self.target}: {exc.code().name}") from exc
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            raise Unavailable(f"{self.name} at {self.target} is not serving")

    def component(self) -> Component:
        # The collector is only needed by feedback-sourced runs; it does not gate readiness.
        return Component(self.name, self.start, self.stop, self.check if self._required else None)
