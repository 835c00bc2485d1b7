"""Helpers of the feedback-collector integration tests: the collector as a subprocess,
event builders, and readers of the store and of loopline.labeled.v1."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer
from loopline.common.v1 import common_pb2
from loopline.events.v1 import predictions_pb2
from loopline_core.kafka.cloudevents import EventTypes, decode
from loopline_core.kafka.topics import LABELED


def free_port() -> int:
    """A port free now; another process may bind it first (``Collector.ready`` copes with that)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: What the collector writes when it lost the race for a port (errno 98, EADDRINUSE).
PORT_TAKEN = (b"address already in use", b"errno 98")


class Collector:
    """``python -m loopline_feedback_collector`` with its own schema and consumer group."""

    def __init__(self, postgres_dsn: str, kafka_bootstrap: str, root: Path, *, schema: str, group: str,
                 window_s: float = 3600.0, expiry_interval_s: float = 0.5, max_batch: int = 1000) -> None:
        self.env = {**os.environ, "LOOPLINE_POSTGRES_SCHEMA": schema, "LOOPLINE_POSTGRES__DSN": postgres_dsn,
                    "LOOPLINE_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap, "LOOPLINE_JOIN__GROUP_ID": group,
                    "LOOPLINE_JOIN__WINDOW_S": str(window_s),
                    "LOOPLINE_JOIN__EXPIRY_INTERVAL_S": str(expiry_interval_s),
                    "LOOPLINE_MAX_BATCH": str(max_batch), "LOOPLINE_RUN_DIR": str(root),
                    "LOOPLINE_TELEMETRY__LOCAL_TRACE_DIR": str(root / "traces")}
        self.root = root
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._pick_ports()

    def _pick_ports(self) -> None:
        self.http_port, self.grpc_port = free_port(), free_port()
        self.env.update(LOOPLINE_HTTP_PORT=str(self.http_port), LOOPLINE_GRPC_PORT=str(self.grpc_port))
        self.url = f"http://127.0.0.1:{self.http_port}"

    def start(self) -> None:
        self.starts += 1
        self.log = (self.root / f"collector-{self.starts}.log").open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "loopline_feedback_collector"], env=self.env,
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def _lost_a_port(self) -> bool:
        self.log.flush()
        return any(marker in Path(self.log.name).read_bytes().lower() for marker in PORT_TAKEN)

    async def ready(self, timeout: float = 60.0, port_retries: int = 3) -> None:
        """Wait for /readyz. ``free_port`` cannot reserve a port: when another process took
        one first and the collector exited on it, start again on new ports (the test reads
        ``url`` and ``grpc_port`` after this)."""
        async with asyncio.timeout(timeout):
            while True:
                async with httpx.AsyncClient(base_url=self.url) as client:
                    while self.proc is not None and self.proc.poll() is None:
                        try:
                            if (await client.get("/readyz")).status_code == 200:
                                return
                        except httpx.TransportError:
                            pass
                        await asyncio.sleep(0.05)
                assert port_retries > 0 and self._lost_a_port(), f"collector exited; see {self.log.name}"
                port_retries -= 1
                self.log.close()
                self._pick_ports()
                self.start()

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)
        if self.proc is not None:
            self.log.close()


def classifier_prediction(model: str, prediction_id: str | None = None, *, n_classes: int = 3,
                          predicted: int = 0, variant: int = common_pb2.VARIANT_CHAMPION,
                          version: int = 1) -> predictions_pb2.PredictionLogged:
    probabilities = [0.1 / max(1, n_classes - 1)] * n_classes
    probabilities[predicted] = 0.9
    p = predictions_pb2.PredictionLogged(prediction_id=prediction_id or str(uuid.uuid4()), model=model,
                                         version=version, variant=variant)  # type: ignore[arg-type]
    p.inputs.add(name="features", datatype="FP32", shape=[1, 2], fp_contents=[0.5, 1.5])
    p.outputs.add(name="probabilities", datatype="FP32", shape=[1, n_classes], fp_contents=probabilities)
    p.served_at.FromDatetime(datetime.now(UTC))
    return p


def label(prediction_id: str, *, class_index: int | None = None, number: float | None = None,
          event_time: datetime | None = None) -> predictions_pb2.FeedbackReceived:
    value = common_pb2.Label(class_index=class_index) if class_index is not None else common_pb2.Label(number=number)
    f = predictions_pb2.FeedbackReceived(feedback_id=str(uuid.uuid4()), prediction_id=prediction_id, label=value,
                                         source="it")
    f.event_time.FromDatetime(event_time or datetime.now(UTC))
    return f


async def wait_for(predicate, timeout: float, what: str, interval: float = 0.2) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    last = None
    while asyncio.get_running_loop().time() < deadline:
        last = await predicate()
        if last is True:
            return
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last: {last})")


async def scalar(dsn: str, schema: str, sql: str, *args: object) -> object:
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def labeled_on_topic(bootstrap: str, model: str, expect: int, timeout: float = 90.0
                           ) -> list[tuple[str, predictions_pb2.LabeledPrediction]]:
    """Read loopline.labeled.v1 from the start until ``expect`` records keyed ``model`` were
    seen and the topic went quiet; returns (ce_id, record) pairs, repeats included."""
    consumer = AIOKafkaConsumer(LABELED, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    types = EventTypes(predictions_pb2.LabeledPrediction)
    found: list[tuple[str, predictions_pb2.LabeledPrediction]] = []
    await consumer.start()
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        quiet = 0
        while asyncio.get_running_loop().time() < deadline and (len(found) < expect or quiet < 2):
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            quiet = 0 if batch else quiet + 1
            for records in batch.values():
                for record in records:
                    if record.key != model.encode():
                        continue
                    event = decode(record.value, record.headers, types)
                    found.append((event.id, event.data))  # type: ignore[arg-type]
    finally:
        await consumer.stop()
    return found
