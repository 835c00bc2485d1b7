"""The outbox on the real PostgreSQL and Kafka: a registry process killed between
commit and relay loses nothing, and whatever is sent again keeps its ce_id."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import asyncpg
import httpx
import pytest
from loopline_core.kafka.producer import EventProducer
from loopline_core.settings import KafkaSettings
from registry_it import KEYS, TRAINER, chunks, fresh_schema, headers, read_models_topic, settings, sha, started, \
    torchscript, unique

from loopline_registry.adapters.kafka_publisher import KafkaPublisher
from loopline_registry.bootstrap import wire
from loopline_registry.service.commands import CreateModel, PromoteModelVersion, RegisterModelVersion, UploadArtifact
from loopline_registry.service.relay import OutboxRecord, OutboxRelay

SCHEMA = "registry_it_outbox"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    """`python -m loopline_registry` configured only through LOOPLINE_* variables."""

    def __init__(self, postgres_dsn: str, kafka_bootstrap: str, root: Path, *, relay: bool) -> None:
        self.http_port = _free_port()
        env = {**os.environ, "LOOPLINE_BACKEND": "postgres", "LOOPLINE_POSTGRES_SCHEMA": SCHEMA,
               "LOOPLINE_POSTGRES__DSN": postgres_dsn, "LOOPLINE_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
               "LOOPLINE_HTTP_PORT": str(self.http_port), "LOOPLINE_GRPC_PORT": str(_free_port()),
               "LOOPLINE_RELAY__ENABLED": str(relay).lower(), "LOOPLINE_RELAY__POLL_S": "0.05",
               "LOOPLINE_ARTIFACTS__ROOT": str(root / "artifacts"),
               "LOOPLINE_TELEMETRY__LOCAL_TRACE_DIR": str(root / "traces"),
               "LOOPLINE_AUTH__KEYS": json.dumps({"trainer": {"role": "trainer", "secret": KEYS["trainer"]},
                                                  "operator": {"role": "operator", "secret": KEYS["operator"]}})}
        self.log = (root / f"registry-{self.http_port}.log").open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "loopline_registry"], env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.http_port}"

    async def ready(self, timeout: float = 60.0) -> None:
        async with httpx.AsyncClient(base_url=self.url) as client, asyncio.timeout(timeout):
            while True:
                assert self.proc.poll() is None, f"registry exited early; see {self.log.name}"
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)

    def stop(self, sig: signal.Signals) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=30)
        self.log.close()
        return code


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started_ones: list[Process] = []
    yield started_ones
    for process in started_ones:
        if process.proc.poll() is None:
            process.stop(signal.SIGKILL)


async def pending(postgres_dsn: str, model: str) -> list[tuple[str, bool]]:
    conn = await asyncpg.connect(postgres_dsn)
    try:
        rows = await conn.fetch(f"SELECT event_id, published_at IS NOT NULL AS sent FROM {SCHEMA}.outbox"
                                " WHERE key = $1 ORDER BY seq", model)
    finally:
        await conn.close()
    return [(r["event_id"], r["sent"]) for r in rows]


async def test_a_kill_between_commit_and_relay_loses_nothing(postgres_dsn: str, kafka_bootstrap: str, tmp_path: Path,
                                                            processes: list[Process]) -> None:
    await fresh_schema(postgres_dsn, SCHEMA)
    model = unique("killed")
    first = Process(postgres_dsn, kafka_bootstrap, tmp_path, relay=False)
    processes.append(first)
    await first.ready()
    auth = {"Authorization": f"Bearer {KEYS['trainer']}"}
    async with httpx.AsyncClient(base_url=first.url, headers=auth) as http:
        assert (await http.post("/v1/models", json={"name": model})).status_code == 201
        data = torchscript(0.3)
        artifact = (await http.post("/v1/artifacts", content=data, headers={
            "X-Artifact-Format": "torchscript", "X-Artifact-Sha256": sha(data)})).json()
        assert (await http.post(f"/v1/models/{model}/versions",
                                json={"artifact_sha256": artifact["sha256"]})).status_code == 201
        assert (await http.put(f"/v1/models/{model}/aliases/champion", json={"version": 1})).status_code == 200
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    committed = await pending(postgres_dsn, model)
    assert [sent for _, sent in committed] == [False, False]
    assert await read_models_topic(kafka_bootstrap, model) == []

    second = Process(postgres_dsn, kafka_bootstrap, tmp_path, relay=True)
    processes.append(second)
    await second.ready()
    async with asyncio.timeout(30):
        while not all(sent for _, sent in await pending(postgres_dsn, model)):
            await asyncio.sleep(0.05)
    records = await read_models_topic(kafka_bootstrap, model)
    assert [headers(r)["ce_id"] for r in records] == [event_id for event_id, _ in committed]
    assert second.stop(signal.SIGTERM) == 0


class DiesAfterPublishing(KafkaPublisher):
    async def publish(self, records: Sequence[OutboxRecord]) -> None:
        await super().publish(records)
        raise RuntimeError("killed after the broker acknowledged, before the outbox was marked")


async def test_a_resend_after_a_crash_keeps_the_ce_id(postgres_dsn: str, kafka_bootstrap: str, tmp_path: Path) -> None:
    await fresh_schema(postgres_dsn, SCHEMA)
    model = unique("resent")
    registry = wire(settings(postgres_dsn, kafka_bootstrap, SCHEMA, tmp_path))
    async with started(registry):
        h = registry.handlers
        await h.create_model(TRAINER, CreateModel(model))
        data = torchscript(0.4)
        artifact = await h.upload_artifact(TRAINER, UploadArtifact("torchscript", sha(data), len(data)), chunks(data))
        await h.register_version(TRAINER, RegisterModelVersion(model, artifact.sha256))
        await h.promote(TRAINER, PromoteModelVersion(model, 1, "champion"))
        producer = EventProducer(KafkaSettings(bootstrap_servers=kafka_bootstrap), service="registry")
        await producer.start()
        try:
            with pytest.raises(RuntimeError):
                await OutboxRelay(registry.outbox, DiesAfterPublishing(producer)).relay_once()
        finally:
            await producer.stop()
        assert registry.relay is not None
        while await registry.relay.relay_once():
            pass
    stored = [event_id for event_id, sent in await pending(postgres_dsn, model) if sent]
    records = await read_models_topic(kafka_bootstrap, model)
    ids = [headers(r)["ce_id"] for r in records]
    assert len(stored) == 2 and ids == stored + stored
    times = [headers(r)["ce_time"] for r in records]
    assert times[:2] == times[2:]  # a re-sent event keeps its time too: when the change was committed
