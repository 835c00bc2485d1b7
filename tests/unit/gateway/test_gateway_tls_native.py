"""The native gRPC edge over TLS: ALPN (h2 offered, HTTP/1.1 refused cleanly), the TLS
handshake timeout, and its connection limits (idle, closing, write stall, slow readers,
floods) working over the TLS transport as in plaintext, on asyncio and on uvloop."""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Callable

import grpc
import pytest
import uvloop
from h2_raw import MAX, Raw, gone, message, u32
from tls_certs import Pki
from tls_clients import (
    EchoServicer,
    channel_credentials,
    client_context,
    echo_handlers,
    open_tls,
    tls_settings,
    unfinished_handshakes_closed,
)

from loopline_serving_gateway.entrypoints import h2_edge as h2
from loopline_serving_gateway.entrypoints.grpc_v2 import InferenceServer
from loopline_serving_gateway.entrypoints.h2_edge import NativeGrpcServer


@pytest.fixture
async def serve(pki: Pki) -> AsyncIterator[Callable[..., asyncio.Future[NativeGrpcServer]]]:
    """Starts a native edge over TLS (the gateway's context: ALPN h2) with the given Limits keywords."""
    servers: list[NativeGrpcServer] = []

    async def start(mutual: bool = False, **limits: float) -> NativeGrpcServer:
        server = NativeGrpcServer([echo_handlers()], "127.0.0.1", 0, 4 << 20,
                                  limits=h2.Limits(4 << 20, **limits),  # type: ignore[arg-type]
                                  tls=tls_settings(pki, mutual=mutual).server_context(alpn=("h2",)))
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
                             tls=tls_settings(pki))
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


async def test_a_client_that_never_completes_the_tls_handshake_is_closed(
        pki: Pki, serve: Callable[..., object]) -> None:
    server = await serve(handshake_timeout_s=0.3)  # type: ignore[operator]
    assert 0.3 <= await unfinished_handshakes_closed(server.port) < 3.0
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
                                  tls=tls_settings(pki, mutual=True).server_context(alpn=("h2",)))
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
