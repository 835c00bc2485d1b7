"""The controller's ports bound to the registry's own service layer and to the feedback collector."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from loopline.common.v1 import common_pb2
from loopline.feedback.v1 import feedback_pb2, feedback_pb2_grpc

from loopline_registry.domain.auth import Caller, Role
from loopline_registry.domain.deployment import Deployment, TrafficSplit
from loopline_registry.domain.model import CHAMPION
from loopline_registry.entrypoints.trace import current_trace
from loopline_registry.rollout.policy import Quality
from loopline_registry.service.commands import PromoteModelVersion, SetDeployment
from loopline_registry.service.deployments import deployment_trace, list_deployments, set_deployment
from loopline_registry.service.deps import Deps
from loopline_registry.service.promotion import promote

#: The controller acts as this actor in the audit log.
CONTROLLER = Caller(actor="rollout-controller", role=Role.OPERATOR)

_VARIANTS = {common_pb2.VARIANT_CHAMPION: "champion", common_pb2.VARIANT_CANARY: "canary",
             common_pb2.VARIANT_SHADOW: "shadow"}


class ServiceLayerTarget:
    """Acts in-process: same transactions, audit and outbox as the registry's API.

    Writes carry the active span's trace (the controller's action span), as a
    request's would, so audit entries and outbox events join that trace.
    """

    def __init__(self, deps: Deps, caller: Caller = CONTROLLER) -> None:
        self._deps, self._caller = deps, caller

    def _traced(self) -> Caller:
        trace_id, traceparent = current_trace()
        return replace(self._caller, trace_id=trace_id, traceparent=traceparent)

    async def deployments(self) -> Sequence[Deployment]:
        return await list_deployments(self._deps, self._caller)

    async def traceparent(self, model: str, revision: int) -> str:
        return await deployment_trace(self._deps, self._caller, model, revision)

    async def set_deployment(self, model: str, expected_revision: int, splits: tuple[TrafficSplit, ...],
                             shadow_versions: tuple[int, ...], reason: str) -> Deployment:
        return await set_deployment(self._deps, self._traced(), SetDeployment(
            model, expected_revision, splits, shadow_versions, reason[:1024]))

    async def promote(self, model: str, version: int, reason: str) -> None:
        await promote(self._deps, self._traced(), PromoteModelVersion(model, version, CHAMPION, reason[:1024]))


def windows_since(response: feedback_pb2.GetQualityResponse) -> list[Quality]:
    """The ``since`` windows of a GetQuality answer as Quality records.

    The contract names them ``since:<RFC 3339>``, which the collector writes.
    Collectors released before that fix wrote ``since <ISO 8601>``; that spelling is
    still read so a rolling upgrade (old collector, new registry) does not stall
    every canary (0 labels seen, timed out as failing). Drop it once no such
    collector can run.
    """
    return [Quality(w.version, _VARIANTS.get(w.variant, "other"), w.labelled, dict(w.metrics))
            for w in response.windows if w.window.startswith(("since:", "since "))]


class FeedbackQuality:
    """FeedbackService.GetQuality over gRPC."""

    def __init__(self, target: str, timeout_s: float = 5.0) -> None:
        self._target, self._timeout = target, timeout_s
        self._channel: grpc.aio.Channel | None = None

    async def quality_since(self, model: str, since: datetime) -> list[Quality]:
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(self._target)
        stamp = Timestamp()
        stamp.FromDatetime(since)
        stub = feedback_pb2_grpc.FeedbackServiceStub(self._channel)
        response = await stub.GetQuality(feedback_pb2.GetQualityRequest(model=model, since=stamp),
                                         timeout=self._timeout)
        return windows_since(response)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
