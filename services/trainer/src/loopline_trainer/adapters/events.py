"""TrainingStarted / TrainingCompleted / TrainingFailed on loopline.training.v1 (key: model)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from loopline.events.v1 import training_pb2

from loopline_core.kafka.cloudevents import derive_event_id
from loopline_core.kafka.producer import EventProducer
from loopline_core.kafka.topics import TRAINING

from loopline_trainer.domain.runs import Run


def _ts(moment: datetime | None) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment or datetime.now(UTC))
    return stamp


class KafkaEvents:
    def __init__(self, producer: EventProducer, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._producer = producer
        self._clock = clock

    async def _send(self, run: Run, message: Message, purpose: str) -> None:
        # The id derives from the run, so a resumed run re-emits what consumers already saw.
        subject = f"{run.model}/{run.version}" if run.version else run.model
        await self._producer.send(TRAINING, run.model, message, subject=subject,
                                  event_id=derive_event_id(run.run_id, purpose))

    async def started(self, run: Run, dataset_sha256: str) -> None:
        await self._send(run, training_pb2.TrainingStarted(
            run_id=run.run_id, request_id=run.request.request_id, model=run.model,
            started_at=_ts(run.started_at), dataset_sha256=dataset_sha256), "started")

    async def completed(self, run: Run) -> None:
        await self._send(run, training_pb2.TrainingCompleted(
            run_id=run.run_id, request_id=run.request.request_id, model=run.model, version=run.version,
            metrics=run.metrics, gate_passed=run.gate_passed, gate_reason=run.gate_reason,
            completed_at=_ts(run.finished_at)), "completed")

    async def failed(self, run: Run) -> None:
        await self._send(run, training_pb2.TrainingFailed(
            run_id=run.run_id, request_id=run.request.request_id, model=run.model, error=run.error,
            failed_at=_ts(run.finished_at)), "failed")
