"""Helpers for the registry's integration tests: a wired registry on the session's
PostgreSQL (its own schema) and Kafka, real TorchScript bytes, and topic reads."""

from __future__ import annotations

import contextlib
import hashlib
import io
import uuid
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from loopline_core.kafka.topics import MODELS, all_topics

from loopline_registry.bootstrap import Registry
from loopline_registry.domain.auth import Caller, Role
from loopline_registry.settings import RegistrySettings

TRAINER = Caller("it-trainer", Role.TRAINER)
OPERATOR = Caller("it-operator", Role.OPERATOR)
READER = Caller("it-reader", Role.READER)
PARTITIONS = {spec.name: spec.partitions for spec in all_topics()}
KEYS = {"admin": "it-admin-secret-0123456789", "trainer": "it-trainer-secret-0123456789",
        "operator": "it-operator-secret-0123456789", "reader": "it-reader-secret-0123456789"}


def torchscript(seed: float) -> bytes:
    """A real torch.jit.save archive of a tiny scripted module."""
    import torch

    class Scale(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.full((4, 2), seed))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.softmax(x @ self.weight, dim=1)

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is still the format Triton serves here
        torch.jit.save(torch.jit.script(Scale()), buffer)
    return buffer.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def chunks(data: bytes, size: int = 1 << 16) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


def settings(postgres_dsn: str, kafka_bootstrap: str, schema: str, root: Path, **extra: object) -> RegistrySettings:
    return RegistrySettings(**{
        "backend": "postgres", "postgres_schema": schema, "postgres": {"dsn": postgres_dsn},
        "kafka": {"bootstrap_servers": kafka_bootstrap}, "artifacts": {"root": str(root), "max_upload_bytes": 1 << 20},
        "relay": {"poll_s": 0.05}, "gate": {"metric": "accuracy", "margin": 0.01},
        "auth": {"keys": {role: {"role": role, "secret": secret} for role, secret in KEYS.items()}}, **extra})


async def fresh_schema(postgres_dsn: str, schema: str) -> None:
    conn = await asyncpg.connect(postgres_dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def started(registry: Registry) -> AsyncIterator[Registry]:
    """Starts the components (PostgreSQL + migrations, API keys, Kafka producer) without the servers."""
    done = []
    try:
        for component in registry.components:
            await component.start()
            done.append(component)
        yield registry
    finally:
        for component in reversed(done):
            if component.stop:
                await component.stop()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def read_models_topic(bootstrap: str, key: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record on loopline.models.v1 with this key, in offset order per partition."""
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await reader.start()
    try:
        partitions = [TopicPartition(MODELS, p) for p in range(PARTITIONS[MODELS])]
        reader.assign(partitions)
        await reader.seek_to_beginning(*partitions)
        end = await reader.end_offsets(partitions)
        records: list[ConsumerRecord[bytes, bytes]] = []
        while [tp for tp in partitions if await reader.position(tp) < end[tp]]:
            for batch in (await reader.getmany(timeout_ms=1000)).values():
                records.extend(r for r in batch if r.key == key.encode())
        return sorted(records, key=lambda r: r.offset)
    finally:
        await reader.stop()


def headers(record: ConsumerRecord[bytes, bytes]) -> dict[str, str]:
    return {k: v.decode() for k, v in record.headers}
