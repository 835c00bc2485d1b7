"""FeedbackService over gRPC (errors mapped to status codes by the core interceptor)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC
from typing import Any

import grpc
from loopline.feedback.v1 import feedback_pb2, feedback_pb2_grpc
from loopline_core.errors import InvalidArgument

from loopline_feedback_collector.service import FeedbackService

SERVICE_NAME = "loopline.feedback.v1.FeedbackService"


class FeedbackServicer(feedback_pb2_grpc.FeedbackServiceServicer):
    def __init__(self, service: FeedbackService) -> None:
        self._service = service

    async def SubmitFeedback(self, request: feedback_pb2.SubmitFeedbackRequest,  # noqa: N802
                             context: Any) -> feedback_pb2.SubmitFeedbackResponse:
        accepted = await self._service.submit([request])
        return feedback_pb2.SubmitFeedbackResponse(feedback_id=accepted[0].feedback_id, outcome="accepted")

    async def StreamFeedback(self, request_iterator: AsyncIterator[feedback_pb2.SubmitFeedbackRequest],  # noqa: N802
                             context: Any) -> feedback_pb2.StreamFeedbackResponse:
        """Accepts the good labels of the stream, reports the bad ones by index."""
        response = feedback_pb2.StreamFeedbackResponse()
        pending: list[feedback_pb2.SubmitFeedbackRequest] = []
        seen: set[str] = set()
        index = 0
        async for request in request_iterator:
            try:
                self._service._event(request, self._service._clock())  # noqa: SLF001 - validation only
            except InvalidArgument as exc:
                response.errors.add(index=index, prediction_id=request.prediction_id[:80], message=exc.message)
            else:
                identity = request.SerializeToString(deterministic=True)
                if identity in seen:
                    response.duplicates += 1
                else:
                    seen.add(identity)  # type: ignore[arg-type]
                    pending.append(request)
                if len(pending) >= self._service.max_batch:
                    response.accepted += len(await self._service.submit(pending))
                    pending = []
            index += 1
        if pending:
            response.accepted += len(await self._service.submit(pending))
        return response

    async def GetQuality(self, request: feedback_pb2.GetQualityRequest,  # noqa: N802
                         context: Any) -> feedback_pb2.GetQualityResponse:
        since = request.since.ToDatetime(tzinfo=UTC) if request.HasField("since") else None
        return await self._service.quality(request.model, request.version, since)

    async def ExportLabeled(self, request: feedback_pb2.ExportLabeledRequest,  # noqa: N802
                            context: Any) -> AsyncIterator[feedback_pb2.ExportLabeledResponse]:
        async for chunk in self._service.export(request):
            yield chunk


def registration(service: FeedbackService) -> Callable[[grpc.aio.Server], None]:
    def register(server: grpc.aio.Server) -> None:
        feedback_pb2_grpc.add_FeedbackServiceServicer_to_server(FeedbackServicer(service), server)

    return register
