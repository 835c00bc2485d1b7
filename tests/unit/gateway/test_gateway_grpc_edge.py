"""The V2 gRPC edge on both servers (the native asyncio HTTP/2 edge and grpc.aio, loopback)
with an in-memory Triton: the generic handler's answers, refusals and spans."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import grpc
import pytest
from gateway_fakes import FakeTriton, request
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from loopline_serving_gateway.domain.deployments import Deployment, Split, route_for
from loopline_serving_gateway.domain.routing import RoutingTable, Variant
from loopline_serving_gateway.entrypoints.grpc_v2 import CONTROL, InferenceServer, InferenceServicer
from loopline_serving_gateway.handlers.auth import Gatekeeper
from loopline_serving_gateway.handlers.inference import Inference
from loopline_serving_gateway.handlers.models import ModelCatalog
from loopline_serving_gateway.handlers.tracing import Tracing
from loopline_serving_gateway.metrics import GatewayMetrics
from loopline_serving_gateway.settings import GatewaySettings

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture(params=["native", "aio"])
def edge(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def _edge(tracing: Tracing, keys: list[str] | None = None,
                edge: str = "native") -> tuple[InferenceServer, FakeTriton]:
    triton = FakeTriton()
    table = RoutingTable()
    table.switch(route_for(Deployment("iris", 1, (Split(1, 1.0, Variant.CHAMPION),)), None, None))
    triton.loaded = set(table.referenced())
    inference = Inference(table, triton, None, GatewayMetrics(), GatewaySettings(), Counter())
    catalog = ModelCatalog(table, triton)
    servicer = InferenceServicer(inference, catalog, Gatekeeper(keys or []), tracing)
    server = InferenceServer(servicer, "127.0.0.1", 0, 1 << 20, edge)
    await server.start()
    return server, triton


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
async def stub(spans: InMemorySpanExporter,
               edge: str) -> AsyncIterator[tuple[pb_grpc.GRPCInferenceServiceStub, FakeTriton]]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    server, triton = await _edge(Tracing(True, provider), edge=edge)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        client = pb_grpc.GRPCInferenceServiceStub(channel)
        client.port = f"127.0.0.1:{server.port}"  # type: ignore[attr-defined]
        yield client, triton
    await server.stop()


async def test_model_infer_answers_with_ids_and_two_spans_joined_to_the_caller(
        stub: tuple[pb_grpc.GRPCInferenceServiceStub, FakeTriton], spans: InMemorySpanExporter) -> None:
    client, triton = stub
    call = client.ModelInfer(request("iris"), metadata=(("traceparent", TRACEPARENT),))
    response = await call
    trailing = dict(await call.trailing_metadata())
    assert response.model_name == "iris" and response.model_version == "1"
    assert trailing["x-prediction-id"] == response.parameters["prediction_id"].string_param
    finished = {span.kind.name: span for span in spans.get_finished_spans()}
    assert len(spans.get_finished_spans()) == 2
    server, client_span = finished["SERVER"], finished["CLIENT"]
    assert server.name == "inference.GRPCInferenceService/ModelInfer" and server.kind.name == "SERVER"
    assert client_span.kind.name == "CLIENT" and client_span.parent.span_id == server.context.span_id
    assert format(server.context.trace_id, "032x") == TRACEPARENT.split("-")[1]  # joined to the caller's trace
    assert server.attributes["loopline.prediction_id"] == trailing["x-prediction-id"]
    sent = triton.metadata[-1]["traceparent"]
    assert sent.split("-")[2] == format(client_span.context.span_id, "016x")  # Triton continues the client span


async def test_control_methods_are_refused_and_garbage_is_invalid(
        stub: tuple[pb_grpc.GRPCInferenceServiceStub, FakeTriton]) -> None:
    client, _ = stub
    assert "RepositoryModelLoad" in CONTROL and "SystemSharedMemoryRegister" in CONTROL
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await client.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="iris.v1"))
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as shm:
        await client.SystemSharedMemoryRegister(pb.SystemSharedMemoryRegisterRequest(name="x"))
    assert shm.value.code() == grpc.StatusCode.PERMISSION_DENIED
    async with grpc.aio.insecure_channel(client.port) as channel:  # type: ignore[attr-defined]
        raw = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        with pytest.raises(grpc.aio.AioRpcError) as garbage:
            await raw(b"\xff\xff\xff")
    assert garbage.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    bad = request("iris")
    bad.parameters["shared_memory_region"].string_param = "r"
    with pytest.raises(grpc.aio.AioRpcError) as shared:
        await client.ModelInfer(bad)
    assert shared.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "shared memory" in shared.value.details()
    assert (await client.ServerLive(pb.ServerLiveRequest())).live


async def test_unsampled_requests_make_no_client_span_but_still_propagate(edge: str) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ALWAYS_OFF)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    server, triton = await _edge(Tracing(True, provider), edge=edge)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        await pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request("iris"))
    await server.stop()
    assert exporter.get_finished_spans() == ()
    flags = int(triton.metadata[-1]["traceparent"].rsplit("-", 1)[1], 16)
    assert flags & 1 == 0  # the context travels to Triton, marked unsampled


async def test_api_keys_are_checked_on_the_grpc_edge(edge: str) -> None:
    server, _ = await _edge(Tracing(False), keys=["secret"], edge=edge)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        client = pb_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await client.ModelInfer(request("iris"))
        ok = await client.ModelInfer(request("iris"), metadata=(("authorization", "Bearer secret"),))
    await server.stop()
    assert missing.value.code() == grpc.StatusCode.UNAUTHENTICATED and ok.model_name == "iris"


async def test_model_stream_infer_is_refused_without_waiting_for_the_client(
        stub: tuple[pb_grpc.GRPCInferenceServiceStub, FakeTriton]) -> None:
    client, _ = stub
    stream = client.ModelStreamInfer()
    with pytest.raises(grpc.aio.AioRpcError):  # the client never half-closes; the write may lose the race
        await stream.write(request("iris"))
        await asyncio.wait_for(stream.read(), 5)
    assert await asyncio.wait_for(stream.code(), 5) == grpc.StatusCode.PERMISSION_DENIED
    assert "not reachable through the gateway" in await stream.details()
