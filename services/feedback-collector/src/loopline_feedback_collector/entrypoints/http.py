"""REST: POST /v1/feedback (one label), POST /v1/feedback/batch, GET /v1/quality/{model}."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from google.protobuf.json_format import MessageToDict
from loopline.common.v1 import common_pb2
from loopline.feedback.v1 import feedback_pb2
from loopline_core.errors import InvalidArgument
from pydantic import BaseModel

from loopline_feedback_collector.service import FeedbackService


class LabelIn(BaseModel):
    class_index: int | None = None
    class_label: str | None = None
    number: float | None = None


class FeedbackIn(BaseModel):
    prediction_id: str
    label: LabelIn
    event_time: datetime | None = None
    source: str = "rest"


class BatchIn(BaseModel):
    labels: list[FeedbackIn]


def _request(item: FeedbackIn) -> feedback_pb2.SubmitFeedbackRequest:
    given = {k: v for k, v in item.label.model_dump().items() if v is not None}
    if len(given) != 1:
        raise InvalidArgument(f"a label has exactly one of class_index, class_label, number (got {sorted(given)})",
                              field="label")
    request = feedback_pb2.SubmitFeedbackRequest(prediction_id=item.prediction_id, source=item.source,
                                                 label=common_pb2.Label(**given))
    if item.event_time is not None:
        if item.event_time.tzinfo is None:
            raise InvalidArgument("event_time needs a timezone (e.g. 2026-01-01T00:00:00Z)", field="event_time")
        request.event_time.FromDatetime(item.event_time)
    return request


def router(service: FeedbackService) -> APIRouter:
    api = APIRouter()

    @api.post("/v1/feedback", status_code=202)
    async def submit_one(item: FeedbackIn) -> dict[str, Any]:
        accepted = (await service.submit([_request(item)]))[0]
        return {"feedback_id": accepted.feedback_id, "prediction_id": accepted.prediction_id}

    @api.post("/v1/feedback/batch", status_code=202)
    async def submit_batch(batch: BatchIn) -> dict[str, Any]:
        if len(batch.labels) > service.max_batch:
            raise InvalidArgument(f"the batch has {len(batch.labels)} labels; at most {service.max_batch} per request",
                                  field="labels")
        requests = []
        for index, item in enumerate(batch.labels):
            try:
                requests.append(_request(item))
            except InvalidArgument as exc:
                raise InvalidArgument(f"labels[{index}]: {exc.message}", field=exc.field) from None
        accepted = await service.submit(requests)
        return {"accepted": len(accepted), "feedback_ids": [a.feedback_id for a in accepted]}

    @api.get("/v1/quality/{model}")
    async def quality(model: str, version: int = 0, since: datetime | None = None) -> dict[str, Any]:
        response = await service.quality(model, version, since)
        return MessageToDict(response, preserving_proto_field_name=True)

    @api.get("/v1/expired")
    async def expired() -> dict[str, int]:
        return await service.expired_counts()

    return api
