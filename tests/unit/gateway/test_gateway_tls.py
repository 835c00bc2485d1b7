"""TLS and mutual TLS on the gateway's ports (``tls`` settings): the V2 gRPC edge on both servers
(native and grpc.aio) with grpcio and tritonclient, the REST port through the real bootstrap,
the native edge's ALPN, TLS handshake timeout and connection limits over TLS (and on uvloop),
and the settings that are refused at start-up with the field named. Certificates are made per
module by ``tls_certs`` (a throwaway CA)."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import struct
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import uvloop
from gateway_fakes import FakeTriton, request
from h2_raw import MAX, Raw, gone, message, u32
from pydantic import ValidationError
from tls_certs import Pki
from tls_clients import (
    EchoServicer,
    channel_credentials,
    client_context,
    echo_handlers,
    get,
    open_tls,
    running_gateway,
    until_up,
)
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from loopline_core.servers.assemble import assemble
from loopline_core.settings import ServiceSettings, load

from loopline_serving_gateway.bootstrap import build
from loopline_serving_gateway.domain.deployments import Deployment, Split, route_for
from loopline_serving_gateway.domain.routing import RoutingTable, Variant
from loopline_serving_gateway.entrypoints import h2_edge as h2
from loopline_serving_gateway.entrypoints.grpc_v2 import InferenceServer, InferenceServicer
from loopline_serving_gateway.entrypoints.h2_edge import NativeGrpcServer
from loopline_serving_gateway.handlers.auth import Gatekeeper
from loopline_serving_gateway.handlers.inference import Inference
from loopline_serving_gateway.handlers.models import ModelCatalog
from loopline_serving_gateway.metrics import GatewayMetrics
from loopline_serving_gateway.settings import GatewaySettings, GrpcEdgeSettings, PredictionLogSettings, TlsSettings


@pytest.fixture(params=["native", "aio"])
def edge(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _tls(pki: Pki, *, mutual: bool = False, min_version: str = "1.2") -> TlsSettings:
    return TlsSettings(cert_file=pki.server_cert, key_file=pki.server_key,
                       client_ca_file=pki.ca if mutual else None, min_version=min_version)  # type: ignore[arg-type]


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
    server = await _gateway_edge(edge, _tls(pki))
    yield server
    await server.stop(1.0)


@pytest.fixture
async def mtls_edge(pki: Pki, edge: str) -> AsyncIterator[InferenceServer]:
    server = await _gateway_edge(edge, _tls(pki, mutual=True))
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


async def test_server_live_and_model_infer_are_served_over_tls(pki: Pki, tls_edge: InferenceServer) -> None:
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


async def test_tritonclient_with_a_client_certificate_on_mutual_tls(pki: Pki, mtls_edge: InferenceServer) -> None:
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
    server = await _gateway_edge("native", _tls(pki, min_version="1.3"))
    try:
        old = client_context(pki, alpn=["h2"])
        old.maximum_version = ssl.TLSVersion.TLSv1_2
        with pytest.raises((ssl.SSLError, ConnectionResetError)):  # an alert, or the connection dropped
            await asyncio.open_connection("127.0.0.1", server.port, ssl=old)
        assert await _live(server.port, channel_credentials(pki))  # grpcio negotiates 1.3
    finally:
        await server.stop(1.0)


# --- the native edge: ALPN, handshake timeout, connection limits over TLS ---------------------

@pytest.fixture
async def serve(pki: Pki) -> AsyncIterator[Callable[..., asyncio.Future[NativeGrpcServer]]]:
    """Starts a native edge over TLS (the gateway's context: ALPN h2) with the given Limits keywords."""
    servers: list[NativeGrpcServer] = []

    async def start(mutual: bool = False, **limits: float) -> NativeGrpcServer:
        server = NativeGrpcServer([echo_handlers()], "127.0.0.1", 0, 4 << 20,
                                  limits=h2.Limits(4 << 20, **limits),  # type: ignore[arg-type]
                                  tls=_tls(pki, mutual=mutual).server_context(alpn=("h2",)))
        await server.start()
        servers.append(server)
        return server

    yield start  # type: ignore[misc]
    for server in servers:
        await server.stop(1.0)


async def _serves(pki: Pki, server: NativeGrpcServer) -> None:
    async with grpc.aio.secure_channel(f"127.0.0.1:{server.port}", channel_credentials(pki, "good")) as channel:
        assert await channel.unary_unary("/test.Edge/Echo")(b"still here", timeout=5) == b"still here"


async def test_the_gateway_edge_offers_h2_and_serves_h2_without_alpn(pki: Pki) -> None:
    server = InferenceServer(EchoServicer(), "127.0.0.1", 0, 1 << 20, "native",  # type: ignore[arg-type]
                             tls=_tls(pki))
    await server.start()
    try:
        for alpn, agreed in ((["h2", "http/1.1"], "h2"), (None, None)):
            raw = await open_tls(pki, server.port, alpn)
            assert raw.writer.get_extra_info("ssl_object").selected_alpn_protocol() == agreed
            raw.send(raw.call(1, b"hello"))
            headers, data = await raw.answer(1)
            assert headers["grpc-status"] == "0" and data == message(b"hello")
            raw.close()
    finally:
        await server.stop(1.0)


async def test_a_client_that_negotiates_http_1_1_is_refused_cleanly(
        pki: Pki, serve: Callable[..., object]) -> None:
    server = await serve()  # type: ignore[operator]
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port, server_hostname="localhost",
                                                   ssl=client_context(pki, alpn=["http/1.1"]))
    assert writer.get_extra_info("ssl_object").selected_alpn_protocol() is None  # we offer h2 only
    writer.write(b"GET /v2/health/live HTTP/1.1\r\nHost: localhost\r\n\r\n")
    raw = Raw(reader, writer)
    code, debug = await raw.until_goaway()  # then closed
    assert code == h2.PROTOCOL_ERROR and b"preface" in debug
    writer.close()
    await _serves(pki, server)


async def _unfinished_handshakes_closed(port: int) -> float:
    """Two clients that never finish a TLS handshake (one says nothing, one sends half a
    ClientHello): the seconds until the server has closed both (10 s at most each)."""
    loop = asyncio.get_running_loop()
    started = loop.time()  # before the server accepts: its timer cannot have started earlier
    silent = await asyncio.open_connection("127.0.0.1", port)
    halfway = await asyncio.open_connection("127.0.0.1", port)
    halfway[1].write(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # the start of a ClientHello, no more
    for reader, writer in (silent, halfway):
        try:
            assert await asyncio.wait_for(reader.read(), 10) == b""
        except ConnectionResetError:
            pass  # closed with the handshake unfinished: an abort is as good as a FIN
        writer.close()
    return loop.time() - started


async def test_a_client_that_never_completes_the_tls_handshake_is_closed(
        pki: Pki, serve: Callable[..., object]) -> None:
    server = await serve(handshake_timeout_s=0.3)  # type: ignore[operator]
    assert 0.3 <= await _unfinished_handshakes_closed(server.port) < 3.0
    assert server.connections == set()  # neither reached the HTTP/2 layer
    # TLS done but no HTTP/2 preface: the HTTP/2 handshake timeout applies as in plaintext
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port, server_hostname="localhost",
                                                   ssl=client_context(pki, alpn=["h2"]))
    code, debug = await Raw(reader, writer).until_goaway()
    assert code == h2.PROTOCOL_ERROR and b"no HTTP/2 client preface" in debug
    writer.close()
    await _serves(pki, server)


async def test_an_idle_tls_connection_gets_goaway_then_close(pki: Pki, serve: Callable[..., object]) -> None:
    server = await serve(idle_timeout_s=0.3)  # type: ignore[operator]
    raw = await open_tls(pki, server.port)
    assert await raw.sync()
    (connection,) = server.connections
    code, debug = await raw.until_goaway()
    assert code == h2.NO_ERROR and b"idle" in debug
    raw.close()
    await gone(server, connection)


async def _deaf_tls_client(pki: Pki, server: NativeGrpcServer,
                           client: str | None = None) -> tuple[ssl.SSLSocket, h2.H2Connection]:
    """A blocking TLS socket (handshake in a thread) that sends the preface and reads nothing more,
    not even our close_notify."""
    before = set(server.connections)

    def connect() -> ssl.SSLSocket:
        sock = client_context(pki, client, alpn=["h2"]).wrap_socket(
            socket.create_connection(("127.0.0.1", server.port)), server_hostname="localhost")
        sock.sendall(h2.PREFACE + h2.frame(h2.SETTINGS, 0, 0, b""))
        return sock

    sock = await asyncio.to_thread(connect)
    while len(server.connections - before) != 1:
        await asyncio.sleep(0.005)
    (connection,) = server.connections - before
    return sock, connection


async def test_a_closed_tls_connection_waits_for_the_client_no_longer_than_plaintext_lingers(
        pki: Pki, serve: Callable[..., object]) -> None:
    """asyncio would wait 30 s for the client's close_notify; we wait the 2 s a plaintext close lingers."""
    server = await serve(idle_timeout_s=0.3)  # type: ignore[operator]
    sock, connection = await _deaf_tls_client(pki, server)
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not connection._closing:
        await asyncio.sleep(0.01)
    await gone(server, connection, within=5.0)
    assert 2.0 <= loop.time() - started < 4.0
    sock.close()


async def test_a_tls_client_that_keeps_its_windows_shut_is_cut_off(pki: Pki, serve: Callable[..., object]) -> None:
    server = await serve(write_stall_timeout_s=0.3)  # type: ignore[operator]
    raw = await open_tls(pki, server.port, settings=struct.pack(">HI", h2.S_INITIAL_WINDOW_SIZE, 1000))
    assert await raw.sync()
    (connection,) = server.connections
    raw.send(raw.call(1, b"5120", "/test.Edge/Big"))
    received = 0
    while received < 1000:
        received += len((await raw.until(h2.DATA, 1))[3])
    code, debug = await raw.until_goaway()
    assert code == h2.NO_ERROR and b"not read" in debug
    raw.close()
    await gone(server, connection)
    await _serves(pki, server)


async def test_a_tls_client_that_stops_reading_is_cut_off_and_its_answers_freed(
        pki: Pki, serve: Callable[..., object]) -> None:
    server = await serve(write_stall_timeout_s=0.3)  # type: ignore[operator]
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the kernel holds little for it
    sock.connect(("127.0.0.1", server.port))
    reader, writer = await asyncio.open_connection(sock=sock, ssl=client_context(pki, alpn=["h2"]),
                                                   server_hostname="localhost", limit=4096)
    raw = Raw(reader, writer)
    raw.send(h2.PREFACE, h2.frame(h2.SETTINGS, 0, 0, struct.pack(">HI", h2.S_INITIAL_WINDOW_SIZE, MAX)),
             h2.frame(h2.WINDOW_UPDATE, 0, 0, u32(MAX - 65535)))
    assert await raw.sync()
    (connection,) = server.connections
    raw.send(*(raw.call(sid, str(1 << 20).encode(), "/test.Edge/Big") for sid in range(1, 17, 2)))
    # 8 MiB of answers, and the client reads no more: its StreamReader stops reading past its
    # small limit, and its TLS layer stops reading the socket soon after
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while not connection._write_paused and loop.time() < deadline:
        await asyncio.sleep(0.005)
    assert connection._write_paused, "the TLS transport never asked us to stop writing"
    await gone(server, connection)
    transport = connection._transport
    assert transport is not None and transport.get_write_buffer_size() == 0
    raw.writer.transport.abort()
    await _serves(pki, server)


async def test_a_frame_flood_over_tls_gets_enhance_your_calm(pki: Pki, serve: Callable[..., object]) -> None:
    server = await serve()  # type: ignore[operator]
    raw = await open_tls(pki, server.port)
    assert await raw.sync()
    (connection,) = server.connections
    raw.send(*(h2.frame(h2.PING, 0, 0, struct.pack(">Q", n)) for n in range(2500)))
    code, debug = await raw.until_goaway()
    assert code == h2.ENHANCE_YOUR_CALM and b"no progress" in debug
    raw.close()
    await gone(server, connection)
    await _serves(pki, server)


def test_the_native_edge_over_mutual_tls_on_uvloop(pki: Pki) -> None:
    """Production runs on uvloop, whose TLS transport is its own: served, refused, handshake timeout."""

    async def scenario() -> None:
        server = NativeGrpcServer([echo_handlers()], "127.0.0.1", 0, 1 << 20,
                                  limits=h2.Limits(1 << 20, handshake_timeout_s=0.3, idle_timeout_s=1.0),
                                  tls=_tls(pki, mutual=True).server_context(alpn=("h2",)))
        await server.start()
        loop = asyncio.get_running_loop()
        assert isinstance(loop, uvloop.Loop)

        def echo(client: str | None) -> bytes:
            with grpc.secure_channel(f"127.0.0.1:{server.port}", channel_credentials(pki, client)) as channel:
                return channel.unary_unary("/test.Edge/Echo")(b"on uvloop", timeout=5)  # type: ignore[no-any-return]

        try:
            assert await loop.run_in_executor(None, echo, "good") == b"on uvloop"
            for client in (None, "other"):
                with pytest.raises(grpc.RpcError) as caught:
                    await loop.run_in_executor(None, echo, client)
                assert caught.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
            started = loop.time()
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            try:
                assert await asyncio.wait_for(reader.read(), 5) == b""
            except ConnectionResetError:
                pass
            assert 0.25 <= loop.time() - started < 3.0  # libuv's clock and timers count whole milliseconds
            writer.close()
            assert await loop.run_in_executor(None, echo, "good") == b"on uvloop"
            sock, connection = await _deaf_tls_client(pki, server, "good")  # idle, then our close_notify goes unanswered
            started = loop.time()
            await gone(server, connection, within=8.0)
            assert loop.time() - started < 6.0
            sock.close()
        finally:
            await server.stop(1.0)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(scenario())


# --- REST over TLS, through the real bootstrap -------------------------------------------------

async def test_rest_is_served_over_tls_and_plaintext_http_is_not(pki: Pki, tmp_path: Path) -> None:
    run, stop, port = await running_gateway(tmp_path, _tls(pki))
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
    run, stop, port = await running_gateway(tmp_path, _tls(pki, mutual=True))
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
    run, stop, port = await running_gateway(tmp_path, _tls(pki, min_version="1.3"))
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
    tls = _tls(pki).model_copy(update={"handshake_timeout_s": 0.5})
    run, stop, port = await running_gateway(tmp_path, tls)
    url = f"https://127.0.0.1:{port}/healthz"
    try:
        await until_up(url, client_context(pki))
        assert 0.5 <= await _unfinished_handshakes_closed(port) < 5.0  # asyncio's default: 60 s
        assert await get(url, client_context(pki)) == 200  # and the port serves on
    finally:
        stop()
        assert await asyncio.wait_for(run, 10) == 0


def test_the_bootstrap_wires_tls_only_when_set(pki: Pki, tmp_path: Path) -> None:
    plain = build(GatewaySettings(run_dir=tmp_path, prediction_log=PredictionLogSettings(enabled=False)),
                  registry=object(), consume_events=False)  # type: ignore[arg-type]
    assert plain.host.tls is None and plain.grpc_server._tls is None
    secure = build(GatewaySettings(run_dir=tmp_path, prediction_log=PredictionLogSettings(enabled=False),
                                   tls=_tls(pki, mutual=True)), registry=object(), consume_events=False)  # type: ignore[arg-type]
    assert secure.host.tls is not None
    assert (secure.host.tls.certfile, secure.host.tls.keyfile, secure.host.tls.ca_certs) == (
        str(pki.server_cert), str(pki.server_key), str(pki.ca))
    assert secure.host.tls.minimum_version == ssl.TLSVersion.TLSv1_2
    assert assemble(ServiceSettings(service_name="other")).tls is None  # other services: unchanged


# --- settings refused at start-up --------------------------------------------------------------

def test_tls_is_off_by_default_and_read_from_the_environment(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    assert not GatewaySettings().tls.enabled
    monkeypatch.setenv("LOOPLINE_TLS__CERT_FILE", str(pki.server_cert))
    monkeypatch.setenv("LOOPLINE_TLS__KEY_FILE", str(pki.server_key))
    monkeypatch.setenv("LOOPLINE_TLS__CLIENT_CA_FILE", str(pki.ca))
    monkeypatch.setenv("LOOPLINE_TLS__MIN_VERSION", "1.3")
    tls = load(GatewaySettings).tls
    assert tls.enabled and tls.mutual
    assert (tls.cert_file, tls.key_file, tls.client_ca_file, tls.min_version) == (
        pki.server_cert, pki.server_key, pki.ca, "1.3")


def _bad_settings(pki: Pki, tmp_path: Path) -> dict[str, tuple[dict[str, object], str]]:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a PEM file\n")
    return {
        "only the certificate": ({"cert_file": pki.server_cert}, "tls.key_file is missing"),
        "only the key": ({"key_file": pki.server_key}, "tls.cert_file is missing"),
        "a CA without a certificate": ({"client_ca_file": pki.ca}, "tls.client_ca_file is set without"),
        "a missing certificate file": ({"cert_file": tmp_path / "nowhere.pem", "key_file": pki.server_key},
                                       "tls.cert_file '" + str(tmp_path / "nowhere.pem") + "' cannot be read"),
        "a missing key file": ({"cert_file": pki.server_cert, "key_file": tmp_path / "nowhere.key"},
                               "tls.key_file '" + str(tmp_path / "nowhere.key") + "' cannot be read"),
        "a directory as the key": ({"cert_file": pki.server_cert, "key_file": tmp_path}, "tls.key_file"),
        "a key that is not the certificate's": ({"cert_file": pki.server_cert, "key_file": pki.stray_key},
                                               "is not the private key of the certificate in tls.cert_file"),
        "a key as the certificate": ({"cert_file": pki.server_key, "key_file": pki.server_key},
                                     "tls.cert_file '" + str(pki.server_key) + "' holds no PEM certificate"),
        "garbage as the key": ({"cert_file": pki.server_cert, "key_file": garbage},
                               "tls.key_file '" + str(garbage) + "' holds no PEM private key"),
        "an encrypted key": ({"cert_file": pki.server_cert, "key_file": pki.encrypted_key},
                             "it is encrypted"),
        "a missing client CA": ({"cert_file": pki.server_cert, "key_file": pki.server_key,
                                 "client_ca_file": tmp_path / "ca-nowhere.pem"}, "tls.client_ca_file"),
        "garbage as the client CA": ({"cert_file": pki.server_cert, "key_file": pki.server_key,
                                      "client_ca_file": garbage}, "tls.client_ca_file '" + str(garbage)),
        "an unknown minimum version": ({"cert_file": pki.server_cert, "key_file": pki.server_key,
                                        "min_version": "1.1"}, "min_version"),
    }


@pytest.mark.parametrize("case", ["only the certificate", "only the key", "a CA without a certificate",
                                  "a missing certificate file", "a missing key file", "a directory as the key",
                                  "a key that is not the certificate's", "a key as the certificate",
                                  "garbage as the key", "an encrypted key", "a missing client CA",
                                  "garbage as the client CA", "an unknown minimum version"])
def test_bad_tls_settings_are_refused_at_start_up_with_the_setting_named(
        pki: Pki, tmp_path: Path, case: str) -> None:
    fields, expected = _bad_settings(pki, tmp_path)[case]
    with pytest.raises(ValidationError) as caught:
        GatewaySettings(tls=fields)  # type: ignore[arg-type]
    assert expected in str(caught.value), str(caught.value)


def test_bad_tls_settings_from_the_environment_stop_the_start(
        pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPLINE_TLS__CERT_FILE", str(pki.server_cert))
    with pytest.raises(ValidationError, match="tls.key_file is missing .LOOPLINE_TLS__KEY_FILE."):
        load(GatewaySettings)
    monkeypatch.setenv("LOOPLINE_TLS__KEY_FILE", str(pki.stray_key))
    with pytest.raises(ValidationError, match="tls.key_file .* is not the private key"):
        load(GatewaySettings)


def test_tls_1_3_only_is_refused_on_the_grpc_aio_edge(pki: Pki) -> None:
    with pytest.raises(ValidationError, match="tls.min_version=1.3 is not available with grpc_server=aio"):
        GatewaySettings(grpc_server="aio", tls=_tls(pki, min_version="1.3"))
    assert GatewaySettings(grpc_server="aio", tls=_tls(pki)).tls.enabled
    assert GatewaySettings(grpc_server="native", tls=_tls(pki, min_version="1.3")).tls.min_version == "1.3"


def test_a_file_broken_after_the_settings_loaded_stops_the_grpc_port_from_starting(
        pki: Pki, tmp_path: Path, edge: str) -> None:
    cert = tmp_path / "server.pem"
    cert.write_bytes(pki.read("server_cert"))
    tls = TlsSettings(cert_file=cert, key_file=pki.server_key)
    cert.write_text("rotated badly\n")
    server = InferenceServer(EchoServicer(), "127.0.0.1", 0, 1 << 20, edge,  # type: ignore[arg-type]
                             GrpcEdgeSettings(), tls=tls)
    with pytest.raises(ValueError, match="tls.cert_file .* holds no PEM certificate"):
        asyncio.run(server.start())
