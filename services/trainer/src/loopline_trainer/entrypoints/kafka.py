"""RetrainRequested on loopline.retrain.v1: each becomes a queued run (idempotent by request id).

The handler returns once the run is stored, so the offset is committed then; the
run itself goes on in the background and a restart resumes it from the store.
"""

from __future__ import annotations

from datetime import UTC

from loopline.events.v1 import drift_pb2

from loopline_core.errors import MalformedEvent
from loopline_core.kafka.handlers import Delivery, EventRouter

from loopline_trainer.domain.runs import RunRequest
from loopline_trainer.service.runner import Trainer


def router(trainer: Trainer) -> EventRouter:
    async def on_retrain_requested(delivery: Delivery[drift_pb2.RetrainRequested]) -> None:
        event = delivery.event.data
        if not event.model or not event.request_id:
            raise MalformedEvent("RetrainRequested needs model and request_id", field="model")
        since = event.data_since.ToDatetime(tzinfo=UTC) if event.HasField("data_since") else None
        params = {"requested_by": event.requested_by} if event.requested_by else {}
        if event.version:
            params["drifted_version"] = str(event.version)
        await trainer.submit(RunRequest(event.model, event.request_id, event.reason, params, since))

    return EventRouter().on(drift_pb2.RetrainRequested, on_retrain_requested)
