"""Calls the serving gateway (V2 gRPC and REST, alternately) and sends the labels later.

The gateway answers with the prediction id and the version that served in
``x-prediction-id`` / ``x-model-version`` (gRPC trailing metadata, REST
headers). tritonclient's high-level clients hide both, so the gRPC side uses
tritonclient's generated V2 stub with ``with_call`` and the REST side posts
the V2 JSON body itself.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc
import httpx
from google.protobuf.timestamp_pb2 import Timestamp
from loopline.common.v1 import common_pb2
from loopline.feedback.v1 import feedback_pb2, feedback_pb2_grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc

from loopline_cli.loop.sources import Record


class GatewayError(RuntimeError):
    """The gateway refused or failed a request: the message carries its status and text."""


@dataclass(frozen=True)
class Answer:
    prediction_id: str
    version: int
    predicted: int
    protocol: str


def _argmax(values: Sequence[float]) -> int:
    return max(range(len(values)), key=values.__getitem__)


class GatewayClient:
    def __init__(self, model: str, grpc_target: str, rest_url: str, feature_names: Sequence[str],
                 timeout_s: float = 5.0, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.model, self.names, self.timeout = model, list(feature_names), timeout_s
        self._channel = grpc.aio.insecure_channel(grpc_target)
        self._stub = service_pb2_grpc.GRPCInferenceServiceStub(self._channel)
        self._http = httpx.AsyncClient(base_url=rest_url.rstrip("/"), timeout=timeout_s,
                                       transport=transport)

    def _row(self, record: Record) -> list[float]:
        missing = [n for n in self.names if n not in record.features]
        if missing:
            raise GatewayError(f"record lacks features {missing} the model's signature names")
        return [record.features[n] for n in self.names]

    async def infer_grpc(self, record: Record) -> Answer:
        request = service_pb2.ModelInferRequest(model_name=self.model)
        tensor = request.inputs.add(name="features", datatype="FP32", shape=[1, len(self.names)])
        tensor.contents.fp32_contents.extend(self._row(record))
        request.outputs.add(name="probabilities")
        try:
            call = self._stub.ModelInfer(request, timeout=self.timeout)
            response = await call
            trailing = dict(await call.trailing_metadata() or ())
        except grpc.aio.AioRpcError as exc:
            raise GatewayError(f"gRPC ModelInfer: {exc.code().name}: {exc.details()}") from None
        out = next((o for o in response.outputs if o.name == "probabilities"), None)
        if out is None:
            raise GatewayError("gRPC ModelInfer: no 'probabilities' output in the answer")
        values = list(out.contents.fp32_contents)
        if not values and response.raw_output_contents:
            import numpy as np
            values = np.frombuffer(response.raw_output_contents[list(response.outputs).index(out)],
                                   dtype=np.float32).tolist()
        return Answer(str(trailing.get("x-prediction-id", "")), int(trailing.get("x-model-version", 0) or 0),
                      _argmax(values), "grpc")

    async def infer_rest(self, record: Record) -> Answer:
        body = {"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, len(self.names)],
                            "data": self._row(record)}], "outputs": [{"name": "probabilities"}]}
        try:
            response = await self._http.post(f"/v2/models/{self.model}/infer", json=body)
        except httpx.HTTPError as exc:
            raise GatewayError(f"REST infer: {exc}") from None
        if response.status_code != 200:
            raise GatewayError(f"REST infer: HTTP {response.status_code}: {response.text[:200]}")
        out = next((o for o in response.json().get("outputs", []) if o.get("name") == "probabilities"), None)
        if out is None:
            raise GatewayError("REST infer: no 'probabilities' output in the answer")
        return Answer(response.headers.get("x-prediction-id", ""), int(response.headers.get("x-model-version", 0)),
                      _argmax(out["data"]), "rest")

    async def close(self) -> None:
        await self._channel.close()
        await self._http.aclose()


class FeedbackClient:
    """FeedbackService.SubmitFeedback over gRPC."""

    def __init__(self, target: str, timeout_s: float = 5.0) -> None:
        self._channel = grpc.aio.insecure_channel(target)
        self._stub = feedback_pb2_grpc.FeedbackServiceStub(self._channel)
        self.timeout = timeout_s

    async def submit(self, prediction_id: str, record: Record) -> str:
        stamp = Timestamp()
        stamp.FromDatetime(record.event_time)
        response = await self._stub.SubmitFeedback(feedback_pb2.SubmitFeedbackRequest(
            prediction_id=prediction_id, label=common_pb2.Label(class_index=record.label), event_time=stamp,
            source="loopline-demo"), timeout=self.timeout)
        return response.outcome

    async def close(self) -> None:
        await self._channel.close()


@dataclass(order=True)
class _Pending:
    due: float
    prediction_id: str = field(compare=False)
    record: Record = field(compare=False)


class LabelQueue:
    """Labels become known ``delay_s`` after their prediction (a realistic feedback delay)."""

    def __init__(self, delay_s: float) -> None:
        if delay_s < 0:
            raise ValueError(f"label delay must be >= 0 seconds, got {delay_s}")
        self.delay = delay_s
        self._heap: list[_Pending] = []

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, prediction_id: str, record: Record, now: float | None = None) -> None:
        heapq.heappush(self._heap, _Pending((time.monotonic() if now is None else now) + self.delay,
                                            prediction_id, record))

    def due(self, now: float | None = None) -> list[tuple[str, Record]]:
        now = time.monotonic() if now is None else now
        ready = []
        while self._heap and self._heap[0].due <= now:
            item = heapq.heappop(self._heap)
            ready.append((item.prediction_id, item.record))
        return ready


async def send_due(queue: LabelQueue, feedback: FeedbackClient, now: float | None = None) -> int:
    ready = queue.due(now)
    await asyncio.gather(*(feedback.submit(pid, record) for pid, record in ready))
    return len(ready)
