"""The demo's gateway and feedback clients against in-process fakes speaking the real protocols."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import grpc
import httpx
import pytest
from loopline.feedback.v1 import feedback_pb2, feedback_pb2_grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc

from loopline_cli.loop.sources import Record
from loopline_cli.loop.traffic import FeedbackClient, GatewayClient, GatewayError, LabelQueue, send_due

RECORD = Record({"a": 0.5, "b": -1.0}, 1, datetime(2026, 1, 1, tzinfo=UTC))


class FakeGateway(service_pb2_grpc.GRPCInferenceServiceServicer):
    def __init__(self) -> None:
        self.seen: list[list[float]] = []

    async def ModelInfer(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self.seen.append(list(request.inputs[0].contents.fp32_contents))
        context.set_trailing_metadata((("x-prediction-id", "p-grpc"), ("x-model-version", "3")))
        response = service_pb2.ModelInferResponse(model_name=request.model_name)
        out = response.outputs.add(name="probabilities", datatype="FP32", shape=[1, 2])
        out.contents.fp32_contents.extend([0.2, 0.8])
        return response


class FakeFeedback(feedback_pb2_grpc.FeedbackServiceServicer):
    def __init__(self) -> None:
        self.labels: list[tuple[str, int]] = []

    async def SubmitFeedback(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self.labels.append((request.prediction_id, request.label.class_index))
        return feedback_pb2.SubmitFeedbackResponse(feedback_id="f", outcome="accepted")


def rest(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    if request.url.path != "/v2/models/m/infer":
        return httpx.Response(404, text="unknown model")
    assert body["inputs"][0]["data"] == [0.5, -1.0]
    return httpx.Response(200, json={"outputs": [{"name": "probabilities", "data": [0.9, 0.1]}]},
                          headers={"x-prediction-id": "p-rest", "x-model-version": "2"})


@pytest.fixture
async def servers():  # type: ignore[no-untyped-def]
    server = grpc.aio.server()
    gateway, feedback = FakeGateway(), FakeFeedback()
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(gateway, server)
    feedback_pb2_grpc.add_FeedbackServiceServicer_to_server(feedback, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}", gateway, feedback
    await server.stop(None)


async def test_grpc_and_rest_answers_carry_ids_and_versions(servers) -> None:  # type: ignore[no-untyped-def]
    target, gateway, _ = servers
    client = GatewayClient("m", target, "http://gw", ["a", "b"], transport=httpx.MockTransport(rest))
    try:
        g = await client.infer_grpc(RECORD)
        r = await client.infer_rest(RECORD)
    finally:
        await client.close()
    assert (g.prediction_id, g.version, g.predicted, g.protocol) == ("p-grpc", 3, 1, "grpc")
    assert (r.prediction_id, r.version, r.predicted, r.protocol) == ("p-rest", 2, 0, "rest")
    assert gateway.seen == [[0.5, -1.0]]


async def test_gateway_errors_are_named(servers) -> None:  # type: ignore[no-untyped-def]
    target, _, _ = servers
    client = GatewayClient("other", target, "http://gw", ["a", "b"], transport=httpx.MockTransport(rest))
    try:
        with pytest.raises(GatewayError, match="HTTP 404: unknown model"):
            await client.infer_rest(RECORD)
        with pytest.raises(GatewayError, match="lacks features"):
            await client.infer_rest(Record({"a": 1.0}, 0, RECORD.event_time))
    finally:
        await client.close()


async def test_labels_are_sent_after_their_delay(servers) -> None:  # type: ignore[no-untyped-def]
    target, _, feedback = servers
    client = FeedbackClient(target)
    queue = LabelQueue(delay_s=2.0)
    queue.add("p1", RECORD, now=10.0)
    queue.add("p2", Record(RECORD.features, 0, RECORD.event_time), now=11.0)
    try:
        assert await send_due(queue, client, now=11.5) == 0
        assert await send_due(queue, client, now=12.0) == 1
        assert await send_due(queue, client, now=20.0) == 1
    finally:
        await client.close()
    assert feedback.labels == [("p1", 1), ("p2", 0)] and len(queue) == 0
    with pytest.raises(ValueError, match="label delay"):
        LabelQueue(-1)
