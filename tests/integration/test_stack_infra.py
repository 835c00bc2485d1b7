"""The stack's real infrastructure: Kafka, PostgreSQL and Triton, as the session fixtures start them."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
import httpx
import numpy as np
import tritonclient.http as triton_http
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from loopline_cli.stack import Stack, TritonEndpoints
from loopline_core.kafka.topics import DRIFT_STATE, PREDICTIONS, all_topics


async def test_kafka_has_the_whole_topic_catalogue(kafka_bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        described = {t["topic"]: t for t in await admin.describe_topics([s.name for s in all_topics()])}
        configs = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, DRIFT_STATE)])
    finally:
        await admin.close()
    for spec in all_topics():
        assert described[spec.name]["error_code"] == 0, spec.name
        assert len(described[spec.name]["partitions"]) == spec.partitions, spec.name
    entries = {entry[0]: entry[1] for entry in configs[0].resources[0][4]}
    assert entries["cleanup.policy"] == "compact"


async def test_kafka_round_trip_keeps_key_and_headers(kafka_bootstrap: str) -> None:
    key = uuid.uuid4().hex.encode()
    headers = [("ce_id", b"1"), ("traceparent", b"00-" + b"a" * 32 + b"-" + b"b" * 16 + b"-01")]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        sent = await producer.send_and_wait(PREDICTIONS, b"payload", key=key, headers=headers)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap,
        group_id=f"smoke-{key.decode()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    consumer.subscribe([PREDICTIONS])
    await consumer.start()
    try:
        received = None
        while received is None:
            batches = await consumer.getmany(timeout_ms=1000)
            received = next((r for recs in batches.values() for r in recs if r.key == key), None)
        await consumer.commit()
    finally:
        await consumer.stop()
    assert (received.partition, received.offset) == (sent.partition, sent.offset)
    assert received.value == b"payload"
    assert list(received.headers) == headers


async def test_postgres_accepts_the_loopline_role_and_database(postgres_dsn: str) -> None:
    conn = await asyncpg.connect(postgres_dsn)
    try:
        assert await conn.fetchval("SELECT current_user || '/' || current_database()") == "loopline/loopline"
        await conn.execute("CREATE SCHEMA IF NOT EXISTS smoke; CREATE TABLE IF NOT EXISTS smoke.t (id int)")
        await conn.execute("INSERT INTO smoke.t VALUES (1)")
        assert await conn.fetchval("SELECT count(*) FROM smoke.t") >= 1
    finally:
        await conn.close()


IDENTITY_CONFIG = """\
backend: "python"
max_batch_size: 8
input [ { name: "INPUT0", data_type: TYPE_FP32, dims: [ 4 ] } ]
output [ { name: "OUTPUT0", data_type: TYPE_FP32, dims: [ 4 ] } ]
instance_group [ { kind: KIND_CPU, count: 1 } ]
"""

DOUBLING_MODEL = """\
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        return [
            pb_utils.InferenceResponse(
                [pb_utils.Tensor("OUTPUT0", pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy() * 2)]
            )
            for r in requests
        ]
"""


def test_triton_is_live_with_an_empty_repository_in_the_run_dir(triton: TritonEndpoints, local_stack: Stack) -> None:
    assert httpx.get(f"http://{triton.http_url}/v2/health/live").status_code == 200
    assert httpx.get(f"http://{triton.http_url}/v2/health/ready").status_code == 200
    assert triton.model_repository.is_dir()
    assert local_stack.config.run_dir in triton.model_repository.parents


def test_triton_loads_a_python_model_through_the_repository_api(triton: TritonEndpoints) -> None:
    name = f"doubling_{uuid.uuid4().hex[:8]}"
    version_dir: Path = triton.model_repository / name / "1"
    version_dir.mkdir(parents=True)
    (version_dir / "model.py").write_text(DOUBLING_MODEL)
    (triton.model_repository / name / "config.pbtxt").write_text(IDENTITY_CONFIG)
    client = triton_http.InferenceServerClient(triton.http_url)
    client.load_model(name)
    try:
        tensor = triton_http.InferInput("INPUT0", [2, 4], "FP32")
        tensor.set_data_from_numpy(np.arange(8, dtype=np.float32).reshape(2, 4))
        result = client.infer(name, [tensor]).as_numpy("OUTPUT0")
        assert result.tolist() == (np.arange(8, dtype=np.float32).reshape(2, 4) * 2).tolist()
    finally:
        client.unload_model(name)
