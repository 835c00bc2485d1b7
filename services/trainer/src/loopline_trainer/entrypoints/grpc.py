"""TrainerService over gRPC: StartTraining and GetTrainingRun."""

from __future__ import annotations

from datetime import UTC

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from loopline.trainer.v1 import trainer_pb2 as pb
from loopline.trainer.v1 import trainer_pb2_grpc

from loopline_core.servers.grpc import Register

from loopline_trainer.domain.runs import Run, RunRequest, RunStatus
from loopline_trainer.service.runner import Trainer

SERVICE_NAME = "loopline.trainer.v1.TrainerService"
_STATUS = {RunStatus.QUEUED: pb.RUN_STATUS_QUEUED, RunStatus.RUNNING: pb.RUN_STATUS_RUNNING,
           RunStatus.COMPLETED: pb.RUN_STATUS_COMPLETED, RunStatus.FAILED: pb.RUN_STATUS_FAILED}


def to_message(run: Run) -> pb.TrainingRun:
    message = pb.TrainingRun(run_id=run.run_id, request_id=run.request.request_id, model=run.model,
                             status=_STATUS[run.status], metrics=run.metrics, registered_version=run.version,
                             error=run.error)
    for field, moment in (("started_at", run.started_at), ("finished_at", run.finished_at)):
        if moment is not None:
            stamp = Timestamp()
            stamp.FromDatetime(moment)
            getattr(message, field).CopyFrom(stamp)
    return message


class TrainerServicer(trainer_pb2_grpc.TrainerServiceServicer):
    def __init__(self, trainer: Trainer) -> None:
        self._trainer = trainer

    async def StartTraining(self, request: pb.StartTrainingRequest,  # noqa: N802 - gRPC names
                            context: grpc.aio.ServicerContext) -> pb.TrainingRun:
        since = request.data_since.ToDatetime(tzinfo=UTC) if request.HasField("data_since") else None
        run = await self._trainer.submit(RunRequest(request.model, request.request_id, request.reason,
                                                    dict(request.params), since))
        return to_message(run)

    async def GetTrainingRun(self, request: pb.GetTrainingRunRequest,  # noqa: N802
                             context: grpc.aio.ServicerContext) -> pb.TrainingRun:
        return to_message(await self._trainer.get(request.run_id))


def registration(trainer: Trainer) -> Register:
    def register(server: grpc.aio.Server) -> None:
        trainer_pb2_grpc.add_TrainerServiceServicer_to_server(TrainerServicer(trainer), server)

    return register
