"""TLS and mutual TLS on the gateway's ports (``tls`` settings): the V2 gRPC edge on both servers
(native and grpc.aio) with grpcio and tritonclient, and the REST port through the real
bootstrap. The native edge's own TLS behaviour is in ``test_gateway_tls_native``, the settings
refused at start-up in ``test_gateway_tls_settings``. Certificates are made per module by
``tls_certs`` (a throwaway CA)."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from gateway_fakes import FakeTriton, request
from tls_certs import Pki
from tls_clients import (
    channel_credentials,
    client_context,
    get,
    running_gateway,
    tls_settings,
    unfinished_handshakes_closed,
    until_up,
)
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from loopline_serving_gateway.domain.deployments import Deployment, Split, route_for
from loopline_serving_gateway.domain.routing import RoutingTable, Variant
from loopline_serving_gateway.entrypoints import h2_edge as h2
from loopline_serving_gateway.entrypoints.grpc_v2 import InferenceServer, InferenceServicer
from loopline_serving_gateway.handlers.auth import Gatekeeper
from loopline_serving_gateway.handlers.inference import Inference
from loopline_serving_gateway.handlers.models import ModelCatalog
from loopline_serving_gateway.metrics import GatewayMetrics
from loopline_serving_gateway.settings import GatewaySettings, TlsSettings


@pytest.fixture(params=["native", "aio"])
def edge(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# --- the V2 gRPC edge over TLS (both servers) -------------------------------------------------

async def _gateway_edge(edge: str, tls: TlsSettings) -> InferenceServer:
    triton = FakeTriton()
    table = RoutingTable()
    table.switch(route_for(Deployment("iris", 1, (Split(1, 1.0, Variant.CHAMPION),)), None, None))
    triton.loaded = set(table.referenced())
    inference = Inference(table, triton, None, GatewayMetrics(), GatewaySettings(), Counter())
    servicer = InferenceServicer(inference, ModelCatalog(table, triton), Gatekeeper([]), False)
    server = InferenceServer(servicer, "127.0.0.1", 0, 1 << 20, edge, tls=tls)
    await server.start()
    return server


@pytest.fixture
async def tls_edge(pki: Pki, edge: str) -> AsyncIterator[InferenceServer]:
    server = await _gateway_edge(edge, tls_settings(pki))
    yield server
    await server.stop(1.0)


@pytest.fixture
async def mtls_edge(pki: Pki, edge: str) -> AsyncIterator[InferenceServer]:
    server = await _gateway_edge(edge, tls_settings(pki, mutual=True))
    yield server
    await server.stop(1.0)


async def _live(port: int, credentials: grpc.ChannelCredentials | None) -> bool:
    target = f"127.0.0.1:{port}"
    channel = grpc.aio.secure_channel(target, credentials) if credentials else grpc.aio.insecure_channel(target)
    async with channel:
        return bool((await pb_grpc.GRPCInferenceServiceStub(channel).ServerLive(pb.ServerLiveRequest(),
                                                                                 timeout=5)).live)


async def _refused(port: int, credentials: grpc.ChannelCredentials | None) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _live(port, credentials)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    return caught.value


async def test_server_live_and_model_infer_are_served_overtls_settings(pki: Pki, tls_edge: InferenceServer) -> None:
    async with grpc.aio.secure_channel(f"127.0.0.1:{tls_edge.port}", channel_credentials(pki)) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        assert (await stub.ServerLive(pb.ServerLiveRequest(), timeout=5)).live
        call = stub.ModelInfer(request("iris", rows=2), timeout=5)
        response = await call
        trailing = dict(await call.trailing_metadata())
        assert response.model_name == "iris" and response.model_version == "1"
        assert trailing["x-prediction-id"] == response.parameters["prediction_id"].string_param
        if tls_edge.edge == "native":  # really TLS, with h2 agreed through ALPN
            native = tls_edge._native
            assert native is not None
            (connection,) = native.connections
            transport = connection._transport
            assert transport is not None
            ssl_object = transport.get_extra_info("ssl_object")
            assert ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2"
            assert ssl_object.version() in ("TLSv1.2", "TLSv1.3")


async def test_tritonclient_calls_the_tls_port(pki: Pki, tls_edge: InferenceServer) -> None:
    def calls() -> tuple[bool, str]:
        client = triton_grpc.InferenceServerClient(f"localhost:{tls_edge.port}", ssl=True,
                                                   root_certificates=str(pki.ca))
        try:
            features = triton_grpc.InferInput("features", [1, 4], "FP32")
            features.set_data_from_numpy(np.arange(4, dtype=np.float32).reshape(1, 4))
            result = client.infer("iris", [features], client_timeout=5)
            return client.is_server_live(client_timeout=5), result.get_response().model_name
        finally:
            client.close()

    assert await asyncio.to_thread(calls) == (True, "iris")


async def test_a_plaintext_client_on_the_tls_port_fails_cleanly_and_the_port_serves_on(
        pki: Pki, tls_edge: InferenceServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    await _refused(tls_edge.port, None)  # grpcio speaking plaintext HTTP/2
    reader, writer = await asyncio.open_connection("127.0.0.1", tls_edge.port)
    writer.write(h2.PREFACE + h2.frame(h2.SETTINGS, 0, 0, b""))
    rest = await asyncio.wait_for(reader.read(1 << 16), 5)  # a TLS alert at most, then closed
    assert not rest.startswith(h2.PREFACE[:3]) and await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    assert await _live(tls_edge.port, channel_credentials(pki))
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_mutual_tls_serves_only_clients_with_a_certificate_from_the_ca(
        pki: Pki, mtls_edge: InferenceServer) -> None:
    await _refused(mtls_edge.port, channel_credentials(pki))  # no client certificate
    await _refused(mtls_edge.port, channel_credentials(pki, "other"))  # signed by another CA
    await _refused(mtls_edge.port, None)  # plaintext
    assert await _live(mtls_edge.port, channel_credentials(pki, "good"))
    assert await _live(mtls_edge.port, channel_credentials(pki, "good"))  # and again, after the refusals


async def test_tritonclient_with_a_client_certificate_on_mutualtls_settings(pki: Pki, mtls_edge: InferenceServer) -> None:
    def live() -> bool:
        client = triton_grpc.InferenceServerClient(
            f"localhost:{mtls_edge.port}", ssl=True, root_certificates=str(pki.ca),
            private_key=str(pki.client_key), certificate_chain=str(pki.client_cert))
        try:
            return bool(client.is_server_live(client_timeout=5))
        finally:
            client.close()

    assert await asyncio.to_thread(live)


async def test_the_minimum_tls_version_is_enforced_on_the_native_edge(pki: Pki) -> None:
    server = await _gateway_edge("native", tls_settings(pki, min_version="1.3"))
    try:
        old = client_context(pki, alpn=["h2"])
        old.maximum_version = ssl.TLSVersion.TLSv1_2
        with pytest.raises((ssl.SSLError, ConnectionResetError)):  # an alert, or the connection dropped
            await asyncio.open_connection("127.0.0.1", server.port, ssl=old)
        assert await _live(server.port, channel_credentials(pki))  # grpcio negotiates 1.3
    finally:
        await server.stop(1.0)


# --- REST over TLS, through the real bootstrap -------------------------------------------------

async def test_rest_is_served_over_tls_and_plaintext_http_is_not(pki: Pki, tmp_path: Path) -> None:
    run, stop, port = await running_gateway(tmp_path, tls_settings(pki))
    try:
        await until_up(f"https://localhost:{port}/healthz", client_context(pki))
        assert await get(f"https://127.0.0.1:{port}/v2/health/live", client_context(pki)) == 200
        with pytest.raises(httpx.TransportError):
            await get(f"http://127.0.0.1:{port}/v2/health/live", None)
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):  # not our CA's: not trusted
            await get(f"https://127.0.0.1:{port}/healthz", ssl.create_default_context(cafile=str(pki.other_ca)))
        assert await get(f"https://127.0.0.1:{port}/healthz", client_context(pki)) == 200
    finally:
        stop()
        assert await asyncio.wait_for(run, 10) == 0


async def test_rest_with_mutual_tls_serves_only_clients_with_a_certificate_from_the_ca(
        pki: Pki, tmp_path: Path) -> None:
    run, stop, port = await running_gateway(tmp_path, tls_settings(pki, mutual=True))
    url = f"https://127.0.0.1:{port}/v2/health/live"
    try:
        await until_up(url, client_context(pki, "good"))
        for client in (None, "other"):
            with pytest.raises(httpx.TransportError):
                await get(url, client_context(pki, client))
        assert await get(url, client_context(pki, "good")) == 200
    finally:
        stop()
        assert await asyncio.wait_for(run, 10) == 0


async def test_rest_enforces_the_minimum_tls_version(pki: Pki, tmp_path: Path) -> None:
    run, stop, port = await running_gateway(tmp_path, tls_settings(pki, min_version="1.3"))
    url = f"https://127.0.0.1:{port}/healthz"
    try:
        await until_up(url, client_context(pki))
        old = client_context(pki)
        old.maximum_version = ssl.TLSVersion.TLSv1_2
        with pytest.raises(httpx.ConnectError):
            await get(url, old)
    finally:
        stop()
        assert await asyncio.wait_for(run, 10) == 0


async def test_a_rest_client_that_never_completes_the_tls_handshake_is_closed(pki: Pki, tmp_path: Path) -> None:
    tls = tls_settings(pki).model_copy(update={"handshake_timeout_s": 0.5})
    run, stop, port = await running_gateway(tmp_path, tls)
    url = f"https://127.0.0.1:{port}/healthz"
    try:
        await until_up(url, client_context(pki))
        assert 0.5 <= await unfinished_handshakes_closed(port) < 5.0  # asyncio's default: 60 s
        assert await get(url, client_context(pki)) == 200  # and the port serves on
    finally:
        stop()
        assert await asyncio.wait_for(run, 10) == 0
