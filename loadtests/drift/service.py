"""Events/s through the whole drift detector, Kafka and PostgreSQL included, with
its in-process baselines measured in the same run.

``kafka_run``: the workload is published to loopline.predictions.v1 and
loopline.labeled.v1 first; then the service starts as its own process
(``loadtests.drift.serve``: route and detect loops, checkpoints in PostgreSQL) and
is timed from ready until the route group has committed the inputs' ends and every
drift-inputs record they made is checkpointed. Per core = events /
CPU-seconds of the service process (user + system, from /proc), so a second load
on the machine does not flatter or spoil it; the wall rate is reported too. The
consumer groups start at the topics' ends as they were before the run, so a run
only ever sees its own events.

Baselines, in this process on one core, on the same events: the detect handler
alone (the route stage's ``DriftInputs`` batches already decoded, checkpoints in
memory), and the wired service on
the in-memory broker (route and detect with CloudEvents encoding, no network).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from google.protobuf.message import Message
from loopline.events.v1 import predictions_pb2 as epb
from loopline_core.kafka.cloudevents import EventTypes, decode, encode, new_event
from loopline_core.kafka.handlers import Delivery
from loopline_core.kafka.memory import InMemoryBroker
from loopline_core.kafka.producer import EventProducer, Outgoing
from loopline_core.kafka.topics import DRIFT, DRIFT_INPUTS, LABELED, PREDICTIONS, all_topics, dead_letter_topic
from loopline_core.settings import KafkaSettings

from loadtests.drift import workload
from loopline_drift_detector.adapters.checkpoints import InMemoryCheckpoints
from loopline_drift_detector.bootstrap import wire
from loopline_drift_detector.entrypoints.consumers import DETECT_TYPES
from loopline_drift_detector.handlers.detect import Detection
from loopline_drift_detector.handlers.outbox import StatePersistence
from loopline_drift_detector.handlers.route import batched
from loopline_drift_detector.settings import DriftSettings

PARTITIONS = {spec.name: spec.partitions for spec in all_topics()}
TOPICS = {"predictions": PREDICTIONS, "labeled": LABELED}
TYPES = EventTypes(epb.PredictionLogged, epb.LabeledPrediction)
KEY = "bench-drift-checkpoint-key"
#: The service saves idle partitions this often (default 5 s): the run's last
#: checkpoint comes at most this long after its last record.
CHECKPOINT_INTERVAL_S = 1.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _model(message: Message) -> str:
    return message.model if isinstance(message, epb.PredictionLogged) else message.prediction.model


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await reader.start()
    try:
        ends = await reader.end_offsets([TopicPartition(topic, p) for p in range(PARTITIONS[topic])])
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await reader.stop()


async def start_group_at(bootstrap: str, group: str, offsets: dict[str, dict[int, int]]) -> None:
    """Commits ``offsets`` for ``group``: its first poll starts there, not at the topics' beginnings."""
    client = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await client.start()
    try:
        parts = {TopicPartition(t, p): o for t, by_p in offsets.items() for p, o in by_p.items()}
        client.assign(list(parts))
        await client.commit(parts)
    finally:
        await client.stop()


async def publish(bootstrap: str, events: Sequence[tuple[str, str, Message]], chunk: int = 5000) -> float:
    producer = EventProducer(KafkaSettings(bootstrap_servers=bootstrap), service="bench-drift")
    await producer.start()
    started = time.perf_counter()
    try:
        for kind, topic in TOPICS.items():
            chosen = [Outgoing(key, m) for k, key, m in events if k == kind]
            for at in range(0, len(chosen), chunk):
                await producer.send_batch(topic, chosen[at:at + chunk])
    finally:
        await producer.stop()
    return len(events) / (time.perf_counter() - started)


async def _checkpointed(pool: asyncpg.Pool, group: str) -> dict[int, int]:
    rows = await pool.fetch("SELECT partition, next_offset FROM partition_checkpoints WHERE group_id = $1"
                            " AND topic = $2", group, DRIFT_INPUTS)
    return {r["partition"]: r["next_offset"] for r in rows}


async def _wait_ready(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 90.0) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the drift detector exited with {proc.returncode} before it was ready")
            try:
                if (await client.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError("the drift detector was not ready in time")


async def _wait_routed(bootstrap: str, group: str, ends: dict[str, dict[int, int]], proc: subprocess.Popen[bytes],
                       deadline: float) -> None:
    watcher = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await watcher.start()
    try:
        while True:
            committed = [(await watcher.committed(TopicPartition(t, p)) or 0) >= end
                         for t, by_p in ends.items() for p, end in by_p.items()]
            if all(committed):
                return
            if proc.poll() is not None or time.perf_counter() > deadline:
                raise RuntimeError("the drift detector did not route every record")
            await asyncio.sleep(0.05)
    finally:
        await watcher.stop()


async def kafka_run(bootstrap: str, dsn: str, root: Path, events: Sequence[tuple[str, str, Message]], *,
                    tracing: bool = True, broker_pid: int | None = None, profile: str | None = None,
                    timeout_s: float = 240.0) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    schema, route_group, detect_group = f"drift_bench_{run}", f"bench-{run}.route", f"bench-{run}.detect"
    inputs_start = await end_offsets(bootstrap, DRIFT_INPUTS)
    await start_group_at(bootstrap, route_group, {t: await end_offsets(bootstrap, t) for t in TOPICS.values()})
    await start_group_at(bootstrap, detect_group, {DRIFT_INPUTS: inputs_start})
    dlq_topics = [dead_letter_topic(t) for t in (PREDICTIONS, LABELED, DRIFT_INPUTS)]
    dlq_start = {t: sum((await end_offsets(bootstrap, t)).values()) for t in dlq_topics}
    drift_start = await end_offsets(bootstrap, DRIFT)
    publish_rate = await publish(bootstrap, events)
    input_ends = {t: await end_offsets(bootstrap, t) for t in TOPICS.values()}

    port = free_port()
    env = {**os.environ, "LOOPLINE_KAFKA__BOOTSTRAP_SERVERS": bootstrap, "LOOPLINE_POSTGRES__DSN": dsn,
           "LOOPLINE_POSTGRES_SCHEMA": schema, "LOOPLINE_HTTP_PORT": str(port), "LOOPLINE_RUN_DIR": str(root),
           "LOOPLINE_TELEMETRY__LOCAL_TRACE_DIR": str(root / "traces"), "LOOPLINE_CHECKPOINT_KEY": KEY,
           "LOOPLINE_ROUTE_GROUP": route_group, "LOOPLINE_DETECT_GROUP": detect_group,
           "LOOPLINE_CHECKPOINT_INTERVAL_S": str(CHECKPOINT_INTERVAL_S)}
    if not tracing:
        env["OTEL_SDK_DISABLED"] = "true"
    command = [sys.executable, *(["-m", "cProfile", "-o", profile] if profile else []), "-m", "loadtests.drift.serve"]
    root.mkdir(parents=True, exist_ok=True)
    with (root / f"drift-{run}.log").open("wb") as log:
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            await _wait_ready(port, proc)
            began, cpu0 = time.perf_counter(), cpu_seconds(proc.pid)
            broker0 = cpu_seconds(broker_pid) if broker_pid else None
            pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1, server_settings={"search_path": schema})
            try:
                # The routed records are known once the route group has committed the inputs' ends.
                await _wait_routed(bootstrap, route_group, input_ends, proc, began + timeout_s)
                expected = {p: end for p, end in (await end_offsets(bootstrap, DRIFT_INPUTS)).items()
                            if end > inputs_start.get(p, 0)}
                while True:
                    done = await _checkpointed(pool, detect_group)
                    if all(done.get(p, 0) >= end for p, end in expected.items()):
                        break
                    if proc.poll() is not None or time.perf_counter() - began > timeout_s:
                        raise RuntimeError(f"the drift detector did not checkpoint every record ({done} of "
                                           f"{expected}); see {root}")
                    await asyncio.sleep(0.05)
                wall, cpu = time.perf_counter() - began, cpu_seconds(proc.pid) - cpu0
                routed = sum(end - inputs_start.get(p, 0) for p, end in expected.items())
                broker = cpu_seconds(broker_pid) - broker0 if broker_pid and broker0 is not None else None
            finally:
                await pool.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    drift_events = sum((await end_offsets(bootstrap, DRIFT)).values()) - sum(drift_start.values())
    dead = 0
    for t in dlq_topics:
        dead += sum((await end_offsets(bootstrap, t)).values()) - dlq_start[t]
    n = len(events)
    return {"events": n, "tracing": tracing, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "events_per_s_wall": round(n / wall), "events_per_cpu_s": round(n / cpu),
            "broker_cpu_s": None if broker is None else round(broker, 2),
            "routed_records": routed, "drift_events": drift_events, "dead_lettered": dead, "publish_events_per_s": round(publish_rate)}


def deliveries(events: Sequence[tuple[str, str, Message]], max_records: int = 2000) -> list[list[Delivery]]:
    """The routed records as the detect loop receives them: per drift-inputs partition.
    The route stage's own batching (``route.batched``) on source batches the size a
    poll of ``max_records`` gives per source partition."""
    by_partition: dict[int, list[Delivery]] = {}
    for kind, topic in TOPICS.items():
        chosen = [m for k, _, m in events if k == kind]
        size = max(1, max_records // PARTITIONS[topic])
        for at in range(0, len(chosen), size):
            sources = []
            for offset, message in enumerate(chosen[at:at + size], start=at):
                value, headers = encode(new_event(message, source="/loopline/bench"))
                sources.append(Delivery(topic, 0, offset, None, decode(value, headers, TYPES), tuple(headers)))
            for item in batched(sources)[0]:
                p = workload.partition_of(item.key, PARTITIONS[DRIFT_INPUTS])
                value, headers = encode(new_event(item.message, source="/loopline/bench", event_id=item.event_id))
                batch = by_partition.setdefault(p, [])
                batch.append(Delivery(DRIFT_INPUTS, p, len(batch), item.key, decode(value, headers, DETECT_TYPES),
                                      tuple(headers)))
    return list(by_partition.values())


class _Capture:
    """A producer that keeps nothing: decisions are counted, not sent."""

    def __init__(self) -> None:
        self.sent = 0

    async def send_batch(self, topic: str, items: Sequence[Outgoing]) -> list[str]:
        self.sent += len(items)
        return [i.event_id or "" for i in items]


def _settings(**extra: Any) -> DriftSettings:
    return DriftSettings(checkpoint_key=KEY, checkpoint_interval_s=CHECKPOINT_INTERVAL_S, **extra)


async def detect_handler_run(events: Sequence[tuple[str, str, Message]], batch: int = 2000) -> dict[str, Any]:
    """The detect handler alone: decoded records in batches, checkpoints kept in memory."""
    s = _settings()
    partitions = deliveries(events)
    persistence = StatePersistence(InMemoryCheckpoints(), _Capture(), group="bench", topic=DRIFT_INPUTS,  # type: ignore[arg-type]
                                   key=KEY.encode(), retrain=s.retrain.config())
    detection = Detection(workload.versions(), persistence, config_for=s.monitor_config,
                          checkpoint_interval_s=CHECKPOINT_INTERVAL_S)
    cpu0 = time.process_time()
    for records in partitions:
        for at in range(0, len(records), batch):
            await detection.on_batch(records[at:at + batch])
    await persistence.save_all()
    cpu = time.process_time() - cpu0
    return {"events": len(events), "cpu_s": round(cpu, 2), "events_per_cpu_s": round(len(events) / cpu)}


async def in_memory_run(events: Sequence[tuple[str, str, Message]]) -> dict[str, Any]:
    """The wired service (both loops, CloudEvents, the consumer machinery) on the in-memory broker."""
    broker = InMemoryBroker()
    s = _settings()
    service = wire(s, store=InMemoryCheckpoints(), versions=workload.versions(), producer_driver=broker.producer(),
                   route_driver=broker.consumer(PREDICTIONS, LABELED, group_id=s.route_group),
                   detect_driver_=broker.consumer(DRIFT_INPUTS, group_id=s.detect_group))
    gateway = EventProducer(s.kafka, service="bench", driver=broker.producer())
    await gateway.start()
    for kind, topic in TOPICS.items():
        await gateway.send_batch(topic, [Outgoing(key, m) for k, key, m in events if k == kind])
    await service.producer.start()
    cpu0 = time.process_time()
    tasks = [asyncio.create_task(service.run_route()), asyncio.create_task(service.run_detect())]

    def drained() -> bool:  # the in-memory broker places keys by crc32: ask it, not murmur2
        return all((broker.committed(group, topic, p) or 0) >= len(log)
                   for topic, group in ((PREDICTIONS, s.route_group), (LABELED, s.route_group),
                                        (DRIFT_INPUTS, s.detect_group))
                   for p, log in enumerate(broker._logs[topic]))

    try:
        while not drained():
            await asyncio.sleep(0.01)
    finally:
        service.route.stop()
        service.detect.stop()
        await asyncio.gather(*tasks)
        await service.producer.stop()
    cpu = time.process_time() - cpu0
    return {"events": len(events), "cpu_s": round(cpu, 2), "events_per_cpu_s": round(len(events) / cpu)}


def measure(predictions: int) -> dict[str, Any]:
    """Baselines in this process, then the service on a Kafka and PostgreSQL of its own
    (``loopline_cli.stack``, test configuration: free ports, a temporary run directory)."""
    import tempfile

    from loopline_cli.stack import Stack, StackConfig

    events = workload.stream(predictions)
    kinds = Counter(kind for kind, _, _ in events)
    figures: dict[str, Any] = {
        "workload": {"models": len(workload.MODELS), "features": len(workload.FEATURES),
                     "predictions": kinds["predictions"], "labeled": kinds["labeled"],
                     "drifting_model": workload.MODELS[-1]},
        "detect_handler_alone": asyncio.run(detect_handler_run(events)),
        "service_in_memory_broker": asyncio.run(in_memory_run(events)),
    }
    with tempfile.TemporaryDirectory(prefix="bench-drift-") as tmp:
        stack = Stack(StackConfig.for_tests(Path(tmp) / "stack"))
        try:
            started = time.perf_counter()
            kafka = stack.ensure("kafka")
            stack.ensure("postgres")
            figures["stack_start_s"] = round(time.perf_counter() - started, 1)
            figures["service_kafka"] = asyncio.run(kafka_run(
                stack.config.kafka_bootstrap, stack.config.postgres_dsn, Path(tmp) / "run", events,
                broker_pid=kafka.pid, profile=os.environ.get("BENCH_DRIFT_PROFILE")))
        finally:
            stack.down()
    real = figures["service_kafka"]["events_per_cpu_s"]
    figures["ratios"] = {
        "kafka_vs_detect_handler": round(real / figures["detect_handler_alone"]["events_per_cpu_s"], 3),
        "kafka_vs_in_memory_broker": round(real / figures["service_in_memory_broker"]["events_per_cpu_s"], 3)}
    return figures
