"""Ready-made components for ServiceHost: the dependencies most services share."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

import asyncpg

from loopline_core.db.migrations import Migration, core_migrations, migrate
from loopline_core.db.pool import create_pool, ping
from loopline_core.errors import Unavailable
from loopline_core.servers.host import Component
from loopline_core.settings import PostgresSettings


class PostgresResource:
    """A pool on the service's own schema, migrated when the service starts."""

    def __init__(self, settings: PostgresSettings, schema: str, migrations: list[Migration]) -> None:
        self._settings = settings
        self.schema = schema
        self._migrations = [*core_migrations(), *migrations]
        self._pool: asyncpg.Pool | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise Unavailable("PostgreSQL pool is not connected yet")
        return self._pool

    async def start(self) -> None:
        pool = await create_pool(self._settings, self.schema)
        async with pool.acquire() as conn:
            await migrate(conn, self.schema, self._migrations)
        self._pool = pool

    async def stop(self) -> None:
        if self._pool is not None:
            await self._pool.close()

    async def check(self) -> None:
        await ping(self.pool)

    def component(self) -> Component:
        return Component("postgres", self.start, self.stop, self.check)


class GrpcPeer:
    """A channel to another Loopline service, ready when the peer reports SERVING."""

    def __init__(self, name: str, target: str) -> None:
        self.name = name
        self.target = target
        self._channel: grpc.aio.Channel | None = None

    @property
    def channel(self) -> grpc.aio.Channel:
        if self._channel is None:
            raise Unavailable(f"{self.name} channel is not open yet")
        return self._channel

    async def start(self) -> None:
        self._channel = grpc.aio.insecure_channel(self.target)

    async def stop(self) -> None:
        if self._channel is not None:
            await self._channel.close()

    async def check(self) -> None:
        stub = health_pb2_grpc.HealthStub(self.channel)
        try:
            reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
        except grpc.aio.AioRpcError as exc:
            raise Unavailable(f"{self.name} at {self.target}: {exc.code().name}") from exc
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            raise Unavailable(f"{self.name} at {self.target} is not serving")

    def component(self) -> Component:
        return Component(self.name, self.start, self.stop, self.check)
