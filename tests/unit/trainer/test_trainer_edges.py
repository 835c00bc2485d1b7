"""The Kafka edge (RetrainRequested → run, poison → .dlq, TrainingX events with derived
ids) on the in-memory broker, and resuming runs a previous process left unfinished."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

from loopline.events.v1 import drift_pb2, training_pb2
from loopline_core.kafka.cloudevents import derive_event_id
from loopline_core.kafka.memory import InMemoryBroker
from loopline_core.kafka.producer import EventProducer
from loopline_core.kafka.topics import RETRAIN, TRAINING, dead_letter_topic
from trainer_fakes import T0, FakeFeedback, FakeRegistry, concept_rows, fast_settings, records

from loopline_trainer.adapters.runs import MemoryRunStore
from loopline_trainer.bootstrap import wire
from loopline_trainer.domain.runs import Run, RunRequest, RunStatus, run_id_for


def headers(record) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {k: v.decode() for k, v in record.headers}


async def test_retrain_requests_on_kafka_become_runs_and_poison_is_dead_lettered(tmp_path: Path) -> None:
    broker, registry, feedback = InMemoryBroker(), FakeRegistry(), FakeFeedback()
    settings = fast_settings()
    wired = wire(settings, registry=registry, feedback=feedback, producer=EventProducer(
        settings.kafka, service="trainer", driver=broker.producer()),
        consumer_driver=broker.consumer(RETRAIN, group_id=settings.consumer_group))
    for component in wired.components:
        await component.start()
    x, y = concept_rows(300, concept=0, seed=1)
    feedback.add(x, y, T0)
    request = drift_pb2.RetrainRequested(request_id="drift-7", model="m", version=3, reason="drift")
    request.data_since.FromDatetime(T0 - timedelta(days=1))
    sender = EventProducer(settings.kafka, service="drift-detector", driver=broker.producer())
    await sender.start()
    await sender.send(RETRAIN, "m", request)
    await sender.send(RETRAIN, "m", drift_pb2.RetrainRequested(model="m"))  # no request id: poison
    await sender.send(RETRAIN, "m", request)  # redelivered: the same run

    consumer = asyncio.create_task(wired.consumer.run())
    async with asyncio.timeout(60):
        while broker.committed(settings.consumer_group, RETRAIN, 0) != 3 and \
                all(broker.committed(settings.consumer_group, RETRAIN, p) != 3 for p in range(3)):
            await asyncio.sleep(0.01)
    await wired.trainer.idle()
    wired.consumer.stop()
    await consumer

    run = await wired.trainer.get(run_id_for("m", "drift-7"))
    assert run.status is RunStatus.COMPLETED and run.version == 1
    assert run.request.params["drifted_version"] == "3"
    dead = broker.records(dead_letter_topic(RETRAIN))
    assert len(dead) == 1 and "request_id" in headers(dead[0])["dlq_reason"]
    events = broker.records(TRAINING)
    assert [headers(r)["ce_type"].rsplit(".", 1)[-1] for r in events] == ["TrainingStarted", "TrainingCompleted"]
    assert [headers(r)["ce_id"] for r in events] == [derive_event_id(run.run_id, "started"),
                                                     derive_event_id(run.run_id, "completed")]
    assert {r.key for r in events} == {b"m"}
    completed = training_pb2.TrainingCompleted.FromString(events[1].value)
    assert completed.version == 1 and completed.gate_passed and completed.metrics["accuracy"] > 0.8


async def test_runs_left_unfinished_by_a_previous_process_are_resumed(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records(300, concept=0, seed=1)))
    store = MemoryRunStore()
    left = RunRequest("m", "r-1", "", {"source": f"jsonl:{path}"})
    await store.add(Run(run_id_for("m", "r-1"), left, RunStatus.RUNNING))
    registry = FakeRegistry()
    wired = wire(fast_settings(), registry=registry, feedback=FakeFeedback(), store=store,
                 events=None, producer=EventProducer(fast_settings().kafka, service="t",
                                                     driver=InMemoryBroker().producer()))
    for component in wired.components:
        await component.start()  # the last one resumes
    await wired.trainer.idle()
    run = await wired.trainer.get(run_id_for("m", "r-1"))
    assert run.status is RunStatus.COMPLETED and registry.versions["m"][0].new.run_id == run.run_id
