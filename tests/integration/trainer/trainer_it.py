"""Helpers for the trainer's integration tests: free ports, readiness, a small
in-test FeedbackService (ExportLabeled over a list), and topic reads."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Sequence
from datetime import datetime

import asyncpg
import grpc
import numpy as np
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from grpc_health.v1 import health_pb2, health_pb2_grpc
from loopline.common.v1 import common_pb2
from loopline.events.v1 import predictions_pb2
from loopline.feedback.v1 import feedback_pb2, feedback_pb2_grpc

KEYS = {"admin": "trainer-it-admin-0123456789", "trainer": "trainer-it-trainer-0123456789"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def drop_schema(dsn: str, schema: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def wait_serving(target: str, timeout_s: float = 60.0) -> None:
    async with grpc.aio.insecure_channel(target) as channel, asyncio.timeout(timeout_s):
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            with contextlib.suppress(grpc.aio.AioRpcError):
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            await asyncio.sleep(0.05)


def labeled(model: str, x: np.ndarray, y: np.ndarray, served_at: datetime) -> list[predictions_pb2.LabeledPrediction]:
    out = []
    for i, (row, label) in enumerate(zip(x, y, strict=True)):
        prediction = predictions_pb2.PredictionLogged(
            prediction_id=f"p-{served_at.timestamp()}-{i}", model=model, version=1,
            inputs=[common_pb2.Tensor(name="features", datatype="FP32", shape=[1, len(row)],
                                      fp_contents=[float(v) for v in row])])
        prediction.served_at.FromDatetime(served_at)
        feedback = predictions_pb2.FeedbackReceived(prediction_id=prediction.prediction_id,
                                                    label=common_pb2.Label(class_index=int(label)))
        out.append(predictions_pb2.LabeledPrediction(prediction=prediction, feedback=feedback))
    return out


class ExportOnly(feedback_pb2_grpc.FeedbackServiceServicer):
    """ExportLabeled over ``records`` with the since/until/limit semantics of the contract."""

    def __init__(self) -> None:
        self.records: list[predictions_pb2.LabeledPrediction] = []
        self.requests: list[feedback_pb2.ExportLabeledRequest] = []

    async def ExportLabeled(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self.requests.append(request)
        chosen = [r for r in self.records if r.prediction.model == request.model
                  and (not request.HasField("since") or r.prediction.served_at.ToDatetime()
                       >= request.since.ToDatetime())
                  and (not request.HasField("until") or r.prediction.served_at.ToDatetime()
                       < request.until.ToDatetime())]
        if request.limit:
            chosen = chosen[-request.limit:]
        for start in range(0, len(chosen), 100):
            yield feedback_pb2.ExportLabeledResponse(records=chosen[start:start + 100])


@contextlib.asynccontextmanager
async def feedback_server(servicer: ExportOnly) -> AsyncIterator[str]:
    server = grpc.aio.server()
    feedback_pb2_grpc.add_FeedbackServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(None)


async def read_topic(bootstrap: str, topic: str, partitions: int, key: str | None = None,
                     ) -> list[ConsumerRecord[bytes, bytes]]:
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await reader.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        reader.assign(tps)
        await reader.seek_to_beginning(*tps)
        end = await reader.end_offsets(tps)
        records: list[ConsumerRecord[bytes, bytes]] = []
        while [tp for tp in tps if await reader.position(tp) < end[tp]]:
            for batch in (await reader.getmany(timeout_ms=1000)).values():
                records.extend(r for r in batch if key is None or r.key == key.encode())
        return sorted(records, key=lambda r: (r.partition, r.offset))
    finally:
        await reader.stop()


def headers(record: ConsumerRecord[bytes, bytes]) -> dict[str, str]:
    return {k: v.decode() for k, v in record.headers}


def ids(records: Sequence[ConsumerRecord[bytes, bytes]]) -> list[str]:
    return [headers(r)["ce_id"] for r in records]
