"""A registry ServiceHost built by bootstrap (memory backend) on free loopback ports."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
from registry_fakes import FakeClock

from loopline_registry.adapters.artifacts.memory import MemoryArtifactStore
from loopline_registry.adapters.memory.outbox import MemoryPublisher
from loopline_registry.bootstrap import build
from loopline_registry.settings import RegistrySettings

KEYS = {"admin": "admin-secret-0123456789", "trainer": "trainer-secret-0123456789",
        "operator": "operator-secret-0123456789", "reader": "reader-secret-0123456789"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Running:
    http: str
    grpc: str
    publisher: MemoryPublisher


@contextlib.asynccontextmanager
async def running_registry() -> AsyncIterator[Running]:
    settings = RegistrySettings(
        backend="memory", http_port=free_port(), grpc_port=free_port(), relay={"poll_s": 0.01},
        artifacts={"max_upload_bytes": 1 << 16},
        auth={"keys": {role: {"role": role, "secret": secret} for role, secret in KEYS.items()}})
    publisher = MemoryPublisher()
    host = build(settings, artifacts=MemoryArtifactStore(), publisher=publisher, clock=FakeClock())
    task = asyncio.create_task(host.run())
    base = f"http://127.0.0.1:{settings.http_port}"
    async with httpx.AsyncClient(base_url=base) as client, asyncio.timeout(20):
        while True:
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/readyz")).status_code == 200:
                    break
            await asyncio.sleep(0.02)
    try:
        yield Running(base, f"127.0.0.1:{settings.grpc_port}", publisher)
    finally:
        host.request_stop()
        await task
