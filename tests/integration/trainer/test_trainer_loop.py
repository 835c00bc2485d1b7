"""The trainer on the real Kafka and PostgreSQL, calling the real registry over gRPC
and an in-test FeedbackService: bootstrap from JSONL → champion at 100%; a
RetrainRequested on Kafka → snapshot from the feedback store → candidate beats the
champion on the same holdout → canary requested, all in the request's trace; a weak
candidate is refused by the registry's gate; bad input is refused or dead-lettered."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from loopline.events.v1 import drift_pb2, training_pb2
from loopline.registry.v1 import registry_pb2 as rpb
from loopline.registry.v1.registry_pb2_grpc import RegistryServiceStub
from loopline.trainer.v1 import trainer_pb2 as tpb
from loopline.trainer.v1.trainer_pb2_grpc import TrainerServiceStub
from loopline_core.kafka.producer import EventProducer
from loopline_core.kafka.topics import RETRAIN, TRAINING, all_topics
from loopline_core.settings import KafkaSettings
from trainer_it import (KEYS, ExportOnly, drop_schema, feedback_server, free_port, headers, ids, labeled, read_topic,
                        wait_serving)

from loopline_registry.bootstrap import build as build_registry
from loopline_registry.settings import RegistrySettings
from loopline_trainer.bootstrap import build as build_trainer
from loopline_trainer.domain.runs import run_id_for
from loopline_trainer.settings import TrainerSettings

PARTITIONS = {spec.name: spec.partitions for spec in all_topics()}
REGISTRY_SCHEMA = "trainer_it_registry"
AUTH = (("authorization", f"Bearer {KEYS['admin']}"),)
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def concept(n: int, kind: int, seed: int):  # type: ignore[no-untyped-def]
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    y = (x[:, 0] + (x[:, 1] if kind == 0 else -x[:, 1]) > 0).astype(int)
    return x, y


@dataclass
class Loop:
    registry: RegistryServiceStub
    trainer: TrainerServiceStub
    feedback: ExportOnly
    kafka: str
    root: Path


@pytest.fixture(scope="module")
async def loop(postgres_dsn: str, kafka_bootstrap: str,
               tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Loop]:
    root = tmp_path_factory.mktemp("trainer-it")
    await drop_schema(postgres_dsn, REGISTRY_SCHEMA)
    await drop_schema(postgres_dsn, "trainer")
    registry_settings = RegistrySettings(
        backend="postgres", postgres_schema=REGISTRY_SCHEMA, postgres={"dsn": postgres_dsn},
        kafka={"bootstrap_servers": kafka_bootstrap}, artifacts={"root": str(root / "artifacts")},
        relay={"poll_s": 0.05}, gate={"metric": "accuracy", "margin": 0.01}, http_port=free_port(),
        grpc_port=free_port(), auth={"keys": {r: {"role": r, "secret": s} for r, s in KEYS.items()}})
    registry_target = f"127.0.0.1:{registry_settings.grpc_port}"
    servicer = ExportOnly()
    async with feedback_server(servicer) as feedback_target:
        trainer_settings = TrainerSettings(
            backend="postgres", postgres={"dsn": postgres_dsn}, kafka={"bootstrap_servers": kafka_bootstrap},
            http_port=free_port(), grpc_port=free_port(), consumer_group=f"trainer-it-{uuid.uuid4().hex[:6]}",
            endpoints={"registry": registry_target, "feedback_collector": feedback_target,
                       "registry_api_key": KEYS["trainer"]},
            training={"epochs": 25, "patience": 4, "hidden": 16, "batch_size": 32, "learning_rate": 0.02},
            dataset={"min_rows": 150, "wait_s": 20, "poll_s": 0.2, "older_share": 0.2})
        registry_host, trainer_host = build_registry(registry_settings), build_trainer(trainer_settings)
        registry_task = asyncio.create_task(registry_host.run())
        await wait_serving(registry_target)
        trainer_task = asyncio.create_task(trainer_host.run())
        trainer_target = f"127.0.0.1:{trainer_settings.grpc_port}"
        await wait_serving(trainer_target)
        async with grpc.aio.insecure_channel(registry_target) as rc, grpc.aio.insecure_channel(trainer_target) as tc:
            yield Loop(RegistryServiceStub(rc), TrainerServiceStub(tc), servicer, kafka_bootstrap, root)
        trainer_host.request_stop()
        assert await trainer_task == 0
        registry_host.request_stop()
        assert await registry_task == 0


def decoded(record):  # type: ignore[no-untyped-def]
    kind = headers(record)["ce_type"].rsplit(".", 1)[-1]
    return getattr(training_pb2, kind).FromString(record.value)


async def finished(loop: Loop, run_id: str, timeout_s: float = 90) -> tpb.TrainingRun:
    async with asyncio.timeout(timeout_s):
        while True:
            try:
                with_status = await loop.trainer.GetTrainingRun(tpb.GetTrainingRunRequest(run_id=run_id))
            except grpc.aio.AioRpcError as exc:  # a Kafka-borne request may not be consumed yet
                if exc.code() != grpc.StatusCode.NOT_FOUND:
                    raise
            else:
                if with_status.status in (tpb.RUN_STATUS_COMPLETED, tpb.RUN_STATUS_FAILED):
                    return with_status
            await asyncio.sleep(0.1)


async def bootstrap(loop: Loop, model: str) -> None:
    x, y = concept(400, 0, seed=1)
    path = loop.root / f"{model}.jsonl"
    path.write_text("".join(json.dumps({"features": {"f0": float(a), "f1": float(b), "f2": float(c)},
                                        "label": int(label)}) + "\n" for (a, b, c), label in zip(x, y)))
    run = await loop.trainer.StartTraining(tpb.StartTrainingRequest(
        model=model, request_id="bootstrap", reason="first model", params={"source": f"jsonl:{path}"}))
    done = await finished(loop, run.run_id)
    assert done.status == tpb.RUN_STATUS_COMPLETED, done.error
    assert done.registered_version == 1 and done.metrics["accuracy"] > 0.85


async def test_drift_retrain_registers_a_better_version_and_requests_a_canary(loop: Loop) -> None:
    model = f"churn-{uuid.uuid4().hex[:6]}"
    await bootstrap(loop, model)
    deployment = await loop.registry.GetDeployment(rpb.GetDeploymentRequest(model=model), metadata=AUTH)
    assert [(s.version, s.weight) for s in deployment.splits] == [(1, 1.0)]

    drift = T0 + timedelta(hours=1)
    loop.feedback.records += labeled(model, *concept(300, 0, seed=2), T0)
    loop.feedback.records += labeled(model, *concept(400, 1, seed=3), drift)
    request = drift_pb2.RetrainRequested(request_id=f"drift-{uuid.uuid4().hex[:6]}", model=model, version=1,
                                         reason="concept drift", requested_by="drift-detector")
    request.data_since.FromDatetime(drift)
    trace_id = uuid.uuid4().hex
    producer = EventProducer(KafkaSettings(bootstrap_servers=loop.kafka), service="trainer-it")
    await producer.start()
    try:
        from opentelemetry import context, propagate

        parent = propagate.extract({"traceparent": f"00-{trace_id}-{'1' * 16}-01"})
        token = context.attach(parent)
        try:
            await producer.send(RETRAIN, model, request)
            await producer.send(RETRAIN, model, request)  # a redelivery: still one run
        finally:
            context.detach(token)
    finally:
        await producer.stop()

    run = await finished(loop, run_id_for(model, request.request_id))
    assert run.status == tpb.RUN_STATUS_COMPLETED, run.error
    assert run.registered_version == 2 and run.metrics["accuracy"] > run.metrics["champion_accuracy"] + 0.2
    deployment = await loop.registry.GetDeployment(rpb.GetDeploymentRequest(model=model), metadata=AUTH)
    assert [(s.version, round(s.weight, 6)) for s in deployment.splits] == [(1, 0.9), (2, 0.1)]

    lineage = await loop.registry.GetLineage(rpb.GetLineageRequest(model=model, version=2), metadata=AUTH)
    assert lineage.run.run_id == run.run_id and lineage.run.params["seed"] == "7"
    assert {i.role for i in lineage.inputs} == {"train", "validation", "holdout"}
    train = next(i.dataset_version for i in lineage.inputs if i.role == "train")
    of = json.loads(train.query)["of"]
    snapshot = await loop.registry.GetDatasetVersion(rpb.GetDatasetVersionRequest(
        dataset=of["dataset"], version=of["version"]), metadata=AUTH)
    assert snapshot.content_sha256 == of["sha256"] and json.loads(train.query)["seed"] == 7
    assert snapshot.row_count == 400 + 80 and json.loads(snapshot.query)["recent"]["rows"] == 400
    assert {p.name for p in lineage.run.metric_history} >= {"train_loss", "val_loss"}
    version = lineage.version
    assert list(version.signature.feature_names) == ["f0", "f1", "f2"] and version.reference_profile
    holdout = next(i.dataset_version for i in lineage.inputs if i.role == "holdout").content_sha256
    champion = await loop.registry.GetModelVersion(rpb.GetModelVersionRequest(model=model, version=1), metadata=AUTH)
    assert holdout in {e.holdout_sha256 for e in champion.evaluations}

    events = await read_topic(loop.kafka, TRAINING, PARTITIONS[TRAINING], key=model)
    retrain = [r for r in events if decoded(r).run_id == run.run_id]
    assert [headers(r)["ce_type"] for r in retrain] == ["loopline.events.v1.TrainingStarted",
                                                        "loopline.events.v1.TrainingCompleted"]
    completed = training_pb2.TrainingCompleted.FromString(retrain[-1].value)
    assert completed.gate_passed and completed.version == 2
    assert training_pb2.TrainingStarted.FromString(retrain[0].value).dataset_sha256 == snapshot.content_sha256
    assert len(set(ids(retrain))) == 2
    for record in retrain:  # the chain continues the RetrainRequested record's trace
        assert headers(record)["traceparent"].split("-")[1] == trace_id


async def test_a_weak_candidate_is_refused_by_the_registry_gate(loop: Loop) -> None:
    model = f"weak-{uuid.uuid4().hex[:6]}"
    await bootstrap(loop, model)
    loop.feedback.records += labeled(model, *concept(300, 0, seed=4), T0)
    run = await loop.trainer.StartTraining(tpb.StartTrainingRequest(
        model=model, request_id="weak", params={"epochs": "1", "learning_rate": "0.00001"}))
    done = await finished(loop, run.run_id)
    assert done.status == tpb.RUN_STATUS_COMPLETED and done.registered_version == 2
    events = await read_topic(loop.kafka, TRAINING, PARTITIONS[TRAINING], key=model)
    completed = decoded(events[-1])
    assert completed.run_id == run.run_id and not completed.gate_passed and "promotion gate refused" in completed.gate_reason
    deployment = await loop.registry.GetDeployment(rpb.GetDeploymentRequest(model=model), metadata=AUTH)
    assert [(s.version, s.weight) for s in deployment.splits] == [(1, 1.0)]
    again = await loop.trainer.StartTraining(tpb.StartTrainingRequest(model=model, request_id="weak"))
    assert again.run_id == run.run_id and again.status == tpb.RUN_STATUS_COMPLETED


async def test_bad_requests_are_refused_and_poison_records_dead_lettered(loop: Loop) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await loop.trainer.StartTraining(tpb.StartTrainingRequest(model="m"))
    assert missing.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "request_id" in missing.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await loop.trainer.GetTrainingRun(tpb.GetTrainingRunRequest(run_id="run-nope"))
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND

    producer = EventProducer(KafkaSettings(bootstrap_servers=loop.kafka), service="trainer-it")
    await producer.start()
    try:
        poison = await producer.send(RETRAIN, "nameless", drift_pb2.RetrainRequested(request_id="r-1"))
    finally:
        await producer.stop()
    async with asyncio.timeout(30):
        while True:
            dead = await read_topic(loop.kafka, f"{RETRAIN}.dlq", PARTITIONS[f"{RETRAIN}.dlq"])
            if poison in ids(dead):
                break
            await asyncio.sleep(0.2)
