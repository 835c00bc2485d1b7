"""The REST inference edge in front of FastAPI (raw ASGI): what it answers itself, what it passes
on, its spans, and how it reads (or refuses to read) a body."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from gateway_fakes import FakeTriton
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from loopline_serving_gateway.domain.deployments import Deployment, Split, route_for
from loopline_serving_gateway.domain.routing import RoutingTable, Variant
from loopline_serving_gateway.entrypoints.rest_infer import RestInferEdge
from loopline_serving_gateway.entrypoints.rest_v2 import v2_router
from loopline_serving_gateway.handlers.auth import Gatekeeper
from loopline_serving_gateway.handlers.inference import Inference
from loopline_serving_gateway.handlers.models import ModelCatalog
from loopline_serving_gateway.handlers.tracing import Tracing
from loopline_serving_gateway.metrics import GatewayMetrics
from loopline_serving_gateway.settings import GatewaySettings, Limits

BODY = {"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 4], "data": [0, 1, 2, 3]}]}
PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class Stack:
    def __init__(self, keys: Sequence[str] = (), tracing: Tracing | None = None, max_bytes: int = 4096) -> None:
        self.triton = FakeTriton()
        table = RoutingTable()
        table.switch(route_for(Deployment("iris", 1, (Split(1, 0.5, Variant.CHAMPION), Split(2, 0.5, Variant.CANARY))),
                               None, None))
        self.triton.loaded = set(table.referenced())
        inference = Inference(table, self.triton, None, GatewayMetrics(), GatewaySettings(), Counter())
        self.app = FastAPI()
        self.app.include_router(v2_router(ModelCatalog(table, self.triton)))
        self.edge = RestInferEdge(self.app, inference, Gatekeeper(list(keys)), Limits(max_request_bytes=max_bytes),
                                  tracing)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.edge), base_url="http://gateway")


async def test_only_the_infer_routes_are_answered_here_the_rest_goes_on_to_fastapi() -> None:
    stack = Stack()
    passed: list[str] = []
    app = stack.app

    async def spy(scope: Any, receive: Any, send: Any) -> None:
        passed.append(f"{scope['method']} {scope['path']}")
        await app(scope, receive, send)

    stack.edge._app = spy  # noqa: SLF001
    async with stack.client() as client:
        assert (await client.post("/v2/models/iris/infer", json=BODY)).status_code == 200
        assert (await client.post("/v2/models/iris/versions/2/infer", json=BODY)).headers["x-model-version"] == "2"
        assert passed == []
        assert (await client.get("/v2/models/iris/infer")).status_code == 403  # not a route: refused by FastAPI
        assert (await client.get("/v2/health/live")).status_code == 200
        for path in ("/v2/models/iris/infer/x", "/v2/models/a/b/infer", "/v2/repository/models/iris.v1/load"):
            assert (await client.post(path, json=BODY)).status_code == 403, path
    assert passed == ["GET /v2/models/iris/infer", "GET /v2/health/live", "POST /v2/models/iris/infer/x",
                      "POST /v2/models/a/b/infer", "POST /v2/repository/models/iris.v1/load"]


async def test_routing_keys_from_the_header_or_the_parameter_are_sticky() -> None:
    async with Stack().client() as client:
        for key in ("user-1", "user-2", "user-3"):
            by_header = {(await client.post("/v2/models/iris/infer", json=BODY, headers={"x-routing-key": key})
                          ).headers["x-model-version"] for _ in range(5)}
            keyed = dict(BODY, parameters={"routing_key": key})
            by_parameter = {(await client.post("/v2/models/iris/infer", json=keyed)).headers["x-model-version"]
                            for _ in range(5)}
            assert len(by_header) == 1 and by_header == by_parameter, key


async def test_api_keys_are_checked_and_refusals_name_the_problem() -> None:
    async with Stack(keys=["secret"]).client() as client:
        missing = await client.post("/v2/models/iris/infer", json=BODY)
        assert missing.status_code == 401 and "API key is required" in missing.json()["error"]
        wrong = await client.post("/v2/models/iris/infer", json=BODY, headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 403 and "not valid" in wrong.json()["error"]
        good = await client.post("/v2/models/iris/infer", json=BODY, headers={"authorization": "Bearer secret"})
        assert good.status_code == 200 and good.headers["content-type"] == "application/json"
        assert int(good.headers["content-length"]) == len(good.content)


async def test_an_unavailable_model_is_a_503_that_says_to_retry() -> None:
    stack = Stack()
    stack.triton.broken = {"iris.v1", "iris.v2"}
    async with stack.client() as client:
        reply = await client.post("/v2/models/iris/infer", json=BODY)
    assert reply.status_code == 503 and reply.headers["retry-after"] == "1" and "not ready" in reply.json()["error"]


async def test_the_request_is_one_server_span_with_the_triton_call_under_it() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    stack = Stack(tracing=Tracing(True, provider))
    async with stack.client() as client:
        reply = await client.post("/v2/models/iris/versions/1/infer", json=BODY, headers={"traceparent": PARENT})
        refused = await client.post("/v2/models/iris/infer", content=b"{not json")
    client_span, server, failed_server = exporter.get_finished_spans()
    assert (server.name, server.kind) == ("POST /v2/models/{name}/versions/{version}/infer", SpanKind.SERVER)
    assert server.parent is not None and f"{server.parent.span_id:016x}" == PARENT.split("-")[2]
    assert server.get_span_context().trace_id == int(PARENT.split("-")[1], 16)
    assert (client_span.name, client_span.kind) == ("triton ModelInfer", SpanKind.CLIENT)
    assert client_span.parent == server.get_span_context()
    assert stack.triton.metadata[0]["traceparent"].split("-")[2] == f"{client_span.get_span_context().span_id:016x}"
    assert dict(server.attributes or {}) == {"http.request.method": "POST",
                                             "http.route": "/v2/models/{name}/versions/{version}/infer",
                                             "http.response.status_code": 200,
                                             "loopline.prediction_id": reply.headers["x-prediction-id"],
                                             "loopline.model_version": 1}
    assert failed_server.name == "POST /v2/models/{name}/infer" and failed_server.parent is None
    assert failed_server.status.status_code is StatusCode.ERROR and refused.status_code == 400
    assert failed_server.attributes["http.response.status_code"] == 400  # type: ignore[index]


def _scope(headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {"type": "http", "method": "POST", "path": "/v2/models/iris/infer", "headers": headers}


async def _call(edge: RestInferEdge, headers: list[tuple[bytes, bytes]], messages: list[dict[str, Any]]
                ) -> tuple[list[dict[str, Any]], int]:
    sent: list[dict[str, Any]] = []
    received = 0

    async def receive() -> dict[str, Any]:
        nonlocal received
        received += 1
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await edge(_scope(headers), receive, send)
    return sent, received


async def test_a_declared_body_over_the_limit_is_refused_before_reading_it() -> None:
    sent, received = await _call(Stack(max_bytes=1024).edge, [(b"content-length", b"5000")], [])
    assert received == 0 and sent[0]["status"] == 400
    assert json.loads(sent[1]["body"]) == {"error": "body: body of 5000 bytes exceeds 1024"}


async def test_a_streamed_body_is_refused_once_it_passes_the_limit_and_joined_when_not() -> None:
    chunk = {"type": "http.request", "body": b" " * 600, "more_body": True}
    sent, received = await _call(Stack(max_bytes=1024).edge, [], [dict(chunk), dict(chunk), dict(chunk)])
    assert received == 2 and sent[0]["status"] == 400 and b"exceeds 1024" in sent[1]["body"]
    body = json.dumps(BODY).encode()
    parts = [{"type": "http.request", "body": body[:10], "more_body": True},
             {"type": "http.request", "body": body[10:], "more_body": False}]
    sent, received = await _call(Stack().edge, [], parts)
    version = int(dict(sent[0]["headers"])[b"x-model-version"])  # the fake answers 6 x version
    assert received == 2 and sent[0]["status"] == 200
    assert json.loads(sent[1]["body"])["outputs"][0]["data"] == [6.0 * version]


@pytest.mark.parametrize("traced", [False, True])
async def test_a_client_gone_before_its_body_arrived_gets_no_answer(traced: bool) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    stack = Stack(tracing=Tracing(traced, provider))
    sent, _ = await _call(stack.edge, [], [{"type": "http.request", "body": b"{", "more_body": True},
                                           {"type": "http.disconnect"}])
    assert sent == [] and stack.triton.calls == []
    assert len(exporter.get_finished_spans()) == (1 if traced else 0)  # the span is ended all the same
