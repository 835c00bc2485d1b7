"""The native edge's connection limits over time (h2_edge.Limits): the idle timeout, the
write-stall timeout (a client that stops reading) and the flood budget for frames that make
no progress, each with what must stay untouched (grpcio channels, clients that read slowly,
streams still open, budgets that recover after a second); and the gateway settings
(``GRPC_EDGE__*``) that set them."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator, Callable
from urllib.parse import unquote

import grpc
import hpack
import pytest
from h2_raw import MAX, Raw, gone, message, u32

from loopline_serving_gateway.entrypoints import h2_edge as h2
from loopline_serving_gateway.entrypoints.grpc_v2 import InferenceServer
from loopline_serving_gateway.entrypoints.h2_edge import NativeGrpcServer
from loopline_serving_gateway.settings import GatewaySettings, GrpcEdgeSettings


class State:
    def __init__(self) -> None:
        self.started = 0
        self.cancelled = 0


def _handlers(state: State) -> grpc.GenericRpcHandler:
    async def echo(request: bytes, context: h2.ServicerContext) -> bytes:
        return request

    async def slow(request: bytes, context: h2.ServicerContext) -> bytes:
        state.started += 1
        try:
            await asyncio.sleep(float(request.decode()))
        except asyncio.CancelledError:
            state.cancelled += 1
            raise
        return b"done"

    async def big(request: bytes, context: h2.ServicerContext) -> bytes:
        return b"b" * int(request.decode())

    methods = {name: grpc.unary_unary_rpc_method_handler(fn) for name, fn in
               (("Echo", echo), ("Slow", slow), ("Big", big))}
    return grpc.method_handlers_generic_handler("test.Edge", methods)


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., asyncio.Future[tuple[NativeGrpcServer, State]]]]:
    """Starts a server with the given Limits keywords; all are stopped at the end."""
    servers: list[NativeGrpcServer] = []

    async def start(**limits: float) -> tuple[NativeGrpcServer, State]:
        state = State()
        server = NativeGrpcServer([_handlers(state)], "127.0.0.1", 0, 4 << 20,
                                  limits=h2.Limits(4 << 20, **limits))  # type: ignore[arg-type]
        await server.start()
        servers.append(server)
        return server, state

    yield start  # type: ignore[misc]
    for server in servers:
        await server.stop(1.0)


async def _open(server: NativeGrpcServer, settings: bytes = b"") -> tuple[Raw, h2.H2Connection]:
    before = set(server.connections)
    raw = await Raw.open(server.port, settings)
    assert await raw.sync()
    (connection,) = server.connections - before
    return raw, connection


async def _serves(server: NativeGrpcServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        assert await channel.unary_unary("/test.Edge/Echo")(b"still here", timeout=5) == b"still here"


# --- idle timeout -------------------------------------------------------------------------------

async def test_an_idle_connection_gets_goaway_no_error_then_fin(serve: Callable[..., object]) -> None:
    server, _ = await serve(idle_timeout_s=0.3)  # type: ignore[operator]
    loop = asyncio.get_running_loop()
    raw, connection = await _open(server)
    quiet_from = loop.time()
    code, debug = await raw.until_goaway()  # then EOF: our FIN
    assert code == h2.NO_ERROR and b"idle" in debug
    assert loop.time() - quiet_from >= 0.3
    raw.close()
    await gone(server, connection)


async def test_a_grpcio_channel_reconnects_after_its_idle_connection_was_closed(
        serve: Callable[..., object]) -> None:
    server, _ = await serve(idle_timeout_s=0.2)  # type: ignore[operator]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        echo = channel.unary_unary("/test.Edge/Echo")
        assert await echo(b"first", timeout=5) == b"first"
        (connection,) = server.connections
        await gone(server, connection)
        assert await echo(b"second", timeout=5) == b"second"  # a new connection, no error


async def test_a_request_that_never_finishes_arriving_is_answered_and_reset(serve: Callable[..., object]) -> None:
    # a stream held open by sending nothing kept its connection from ever idling; now the call is
    # answered DEADLINE_EXCEEDED and reset, and the idle timeout closes the connection after it
    server, _ = await serve(request_timeout_s=0.3, idle_timeout_s=1.0)  # type: ignore[operator]
    loop = asyncio.get_running_loop()
    raw, connection = await _open(server)
    began = loop.time()
    body = message(b"half a request")
    raw.send(h2.frame(h2.HEADERS, h2.END_HEADERS, 1, raw.block()), h2.frame(h2.DATA, 0, 1, body[:7]))
    headers, data = await raw.answer(1)
    assert headers["grpc-status"] == str(grpc.StatusCode.DEADLINE_EXCEEDED.value[0]) and data == b""
    assert "did not arrive within 0.3 s" in unquote(headers["grpc-message"])
    assert loop.time() - began >= 0.3
    assert await raw.reset_code(1) == h2.NO_ERROR  # the client stops sending the rest
    assert connection._streams == {}
    raw.send(raw.call(3, b"after"))  # the connection serves on
    headers, data = await raw.answer(3)
    assert headers["grpc-status"] == "0" and data == message(b"after")
    code, debug = await raw.until_goaway()  # and, with nothing open, idles out
    assert code == h2.NO_ERROR and b"idle" in debug
    raw.close()
    await gone(server, connection)


async def test_a_slow_request_that_completes_in_time_is_served(serve: Callable[..., object]) -> None:
    server, _ = await serve(request_timeout_s=1.0)  # type: ignore[operator]
    raw, _connection = await _open(server)
    body = message(b"slowly")
    raw.send(h2.frame(h2.HEADERS, h2.END_HEADERS, 1, raw.block()))
    for index in range(len(body)):  # a byte every 50 ms, about 0.55 s in all
        await asyncio.sleep(0.05)
        last = index == len(body) - 1
        raw.send(h2.frame(h2.DATA, h2.END_STREAM if last else 0, 1, body[index:index + 1]))
    headers, data = await raw.answer(1)
    assert headers["grpc-status"] == "0" and data == message(b"slowly")
    raw.close()


async def test_open_streams_and_incoming_frames_keep_a_connection_from_idling(serve: Callable[..., object]) -> None:
    server, _ = await serve(idle_timeout_s=0.2)  # type: ignore[operator]
    raw, connection = await _open(server)
    raw.send(raw.call(1, b"0.6", "/test.Edge/Slow"))  # silent for 0.6 s, but a stream is open
    headers, data = await raw.answer(1)
    assert headers["grpc-status"] == "0" and data == message(b"done")
    for _ in range(8):  # a PING every 0.1 s: frames keep it alive (keepalive pings)
        await asyncio.sleep(0.1)
        assert await raw.sync()
    assert all(kind != h2.GOAWAY for kind, *_ in raw.frames)
    code, _ = await raw.until_goaway()
    assert code == h2.NO_ERROR
    raw.close()
    await gone(server, connection)


# --- write-stall timeout -----------------------------------------------------------------------

async def test_a_client_that_keeps_its_windows_shut_is_cut_off_and_its_calls_cancelled(
        serve: Callable[..., object]) -> None:
    server, state = await serve(write_stall_timeout_s=0.3)  # type: ignore[operator]
    loop = asyncio.get_running_loop()
    raw, connection = await _open(server, struct.pack(">HI", h2.S_INITIAL_WINDOW_SIZE, 1000))
    raw.send(raw.call(1, b"5120", "/test.Edge/Big"), raw.call(3, b"30", "/test.Edge/Slow"))
    received = 0
    while received < 1000:  # the stream's window, then nothing: the rest waits for a WINDOW_UPDATE
        kind, _, _, payload = await raw.until(h2.DATA, 1)
        received += len(payload)
    stalled_from = loop.time()
    assert connection._blocked and state.started == 1
    code, debug = await raw.until_goaway()
    assert code == h2.NO_ERROR and b"not read" in debug
    assert loop.time() - stalled_from >= 0.3
    raw.close()
    await gone(server, connection)
    await asyncio.sleep(0)
    assert state.cancelled == 1, "the handler of the other stream runs on"
    await _serves(server)


async def test_a_client_that_stops_reading_is_cut_off_and_what_was_queued_for_it_freed(
        serve: Callable[..., object]) -> None:
    server, state = await serve(write_stall_timeout_s=0.3)  # type: ignore[operator]
    before = set(server.connections)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    sock.setblocking(False)
    encoder = hpack.Encoder()

    def block(path: str) -> bytes:
        return encoder.encode([(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "x"),
                               ("content-type", "application/grpc"), ("te", "trailers")])

    wire = [h2.PREFACE, h2.frame(h2.SETTINGS, 0, 0, struct.pack(">HI", h2.S_INITIAL_WINDOW_SIZE, MAX)),
            h2.frame(h2.WINDOW_UPDATE, 0, 0, u32(MAX - 65535))]
    for sid in range(1, 17, 2):  # 8 answers of 1 MiB that the client's windows allow at once
        wire.append(h2.frame(h2.HEADERS, h2.END_HEADERS, sid, block("/test.Edge/Big"))
                    + h2.frame(h2.DATA, h2.END_STREAM, sid, message(str(1 << 20).encode())))
    wire.append(h2.frame(h2.HEADERS, h2.END_HEADERS, 17, block("/test.Edge/Slow"))
                + h2.frame(h2.DATA, h2.END_STREAM, 17, message(b"30")))
    sock.send(b"".join(wire))
    loop = asyncio.get_running_loop()
    while len(server.connections - before) != 1:
        await asyncio.sleep(0.005)
    (connection,) = server.connections - before
    while not connection._write_paused:
        await asyncio.sleep(0.005)
    paused_at = loop.time()
    transport = connection._transport
    assert transport is not None and transport.get_write_buffer_size() > 1 << 20
    await gone(server, connection)  # then its write buffer is empty: freed
    assert loop.time() - paused_at >= 0.3
    await asyncio.sleep(0)
    assert state.started == 1 and state.cancelled == 1
    sock.close()
    await _serves(server)


async def test_a_client_that_reads_slowly_but_steadily_is_not_cut_off(serve: Callable[..., object]) -> None:
    server, _ = await serve(write_stall_timeout_s=0.3)  # type: ignore[operator]
    raw, _connection = await _open(server, struct.pack(">HI", h2.S_INITIAL_WINDOW_SIZE, 1000))
    raw.send(raw.call(1, b"5120", "/test.Edge/Big"))
    received = 0
    while received < 1000:
        received += len((await raw.until(h2.DATA, 1))[3])
    for _ in range(5):  # 1000 more bytes every 0.15 s: the answer takes ~0.75 s, over the timeout
        await asyncio.sleep(0.15)
        raw.send(h2.frame(h2.WINDOW_UPDATE, 0, 1, u32(1000)))
    headers, data = await raw.answer(1)
    assert headers["grpc-status"] == "0" and received + len(data) == 5120 + 5
    assert await raw.sync()
    raw.close()


async def test_a_client_that_reads_under_the_minimum_rate_is_cut_off(serve: Callable[..., object]) -> None:
    """Draining a little now and then is not enough: 100 bytes every 0.1 s is 1,000 bytes/s,
    under a minimum of 10,000 (3,000 bytes per 0.3 s window)."""
    server, state = await serve(write_stall_timeout_s=0.3, min_read_bytes_per_s=10_000)  # type: ignore[operator]
    loop = asyncio.get_running_loop()
    raw, connection = await _open(server, struct.pack(">HI", h2.S_INITIAL_WINDOW_SIZE, 1000))
    raw.send(raw.call(1, b"100000", "/test.Edge/Big"), raw.call(3, b"30", "/test.Edge/Slow"))
    received = 0
    while received < 1000:
        received += len((await raw.until(h2.DATA, 1))[3])
    started = loop.time()

    async def trickle() -> None:
        while True:
            await asyncio.sleep(0.1)
            raw.send(h2.frame(h2.WINDOW_UPDATE, 0, 1, u32(100)))

    trickling = asyncio.create_task(trickle())
    try:
        code, debug = await raw.until_goaway()
    finally:
        trickling.cancel()
    assert code == h2.NO_ERROR and b"under the minimum of 10000 bytes/s" in debug, debug
    assert loop.time() - started >= 0.3
    raw.close()
    await gone(server, connection)
    await asyncio.sleep(0)
    assert state.cancelled == 1
    await _serves(server)


async def test_with_no_minimum_rate_any_progress_keeps_a_slow_reader(serve: Callable[..., object]) -> None:
    server, _ = await serve(write_stall_timeout_s=0.3, min_read_bytes_per_s=0)  # type: ignore[operator]
    raw, _connection = await _open(server, struct.pack(">HI", h2.S_INITIAL_WINDOW_SIZE, 100))
    raw.send(raw.call(1, b"1000", "/test.Edge/Big"))
    received = len((await raw.until(h2.DATA, 1))[3])
    for _ in range(10):  # 100 bytes every 0.1 s: 1 s in all, over three timeouts
        await asyncio.sleep(0.1)
        raw.send(h2.frame(h2.WINDOW_UPDATE, 0, 1, u32(100)))
    headers, data = await raw.answer(1)
    assert headers["grpc-status"] == "0" and received + len(data) == 1000 + 5
    raw.close()


# --- flood budget --------------------------------------------------------------------------------

def _new_stream(raw: Raw, sid: int, frames: list[bytes]) -> list[bytes]:
    """``frames`` inside a call on stream ``sid`` that completes after them."""
    return [h2.frame(h2.HEADERS, h2.END_HEADERS, sid, raw.block()), *frames,
            h2.frame(h2.DATA, h2.END_STREAM, sid, message(b"x"))]


FLOODS: dict[str, Callable[[Raw, int, int], list[bytes]]] = {
    "PING": lambda raw, n, sid: [h2.frame(h2.PING, 0, 0, b"p" * 8)] * n,
    "PING ACK": lambda raw, n, sid: [h2.frame(h2.PING, h2.ACK, 0, b"p" * 8)] * n,
    "SETTINGS": lambda raw, n, sid: [h2.frame(h2.SETTINGS, 0, 0)] * n,
    "SETTINGS ACK": lambda raw, n, sid: [h2.frame(h2.SETTINGS, h2.ACK, 0)] * n,
    "WINDOW_UPDATE": lambda raw, n, sid: [h2.frame(h2.WINDOW_UPDATE, 0, 0, u32(1))] * n,
    "WINDOW_UPDATE on a closed stream": lambda raw, n, sid: [h2.frame(h2.WINDOW_UPDATE, 0, 1, u32(1))] * n,
    "PRIORITY": lambda raw, n, sid: [h2.frame(h2.PRIORITY, 0, sid, u32(0) + b"\x10")] * n,
    "RST_STREAM on a closed stream": lambda raw, n, sid: [h2.frame(h2.RST_STREAM, 0, 1, u32(h2.CANCEL))] * n,
    "an unknown frame type": lambda raw, n, sid: [h2.frame(0x42, 0, 0, b"x")] * n,
    "empty DATA": lambda raw, n, sid: _new_stream(raw, sid, [h2.frame(h2.DATA, 0, sid)] * n),
    "empty CONTINUATION": lambda raw, n, sid: [
        h2.frame(h2.HEADERS, h2.END_STREAM, sid, b""), *[h2.frame(h2.CONTINUATION, 0, sid)] * n,
        h2.frame(h2.CONTINUATION, h2.END_HEADERS, sid, raw.block())],
    "empty HEADERS (malformed requests)": lambda raw, n, sid: [
        h2.frame(h2.HEADERS, h2.END_HEADERS, sid + 2 * i, b"") for i in range(n)],
}


@pytest.mark.parametrize("kind", sorted(FLOODS))
async def test_a_flood_of_frames_that_make_no_progress_gets_enhance_your_calm(
        serve: Callable[..., object], kind: str) -> None:
    server, _ = await serve()  # type: ignore[operator]
    raw, connection = await _open(server)
    raw.send(raw.call(1))  # stream 1: answered, then closed
    assert (await raw.answer(1))[0]["grpc-status"] == "0"
    raw.send(*FLOODS[kind](raw, 900, 3))  # under the budget of 1000 a second
    assert await raw.sync(), f"900 x {kind} were refused"
    raw.send(*FLOODS[kind](raw, 2500, 3001))  # over it in any window of a second
    code, debug = await raw.until_goaway()
    assert code == h2.ENHANCE_YOUR_CALM and b"no progress" in debug
    raw.close()
    await gone(server, connection)
    await _serves(server)


async def test_the_flood_budget_recovers_after_a_second(serve: Callable[..., object]) -> None:
    server, _ = await serve(idle_timeout_s=2.0)  # type: ignore[operator]  # sweeps every 0.5 s
    raw, _connection = await _open(server)
    for _ in range(3):  # 2700 PINGs over ~3 s
        raw.send(*[h2.frame(h2.PING, 0, 0, b"p" * 8)] * 900)
        assert await raw.sync()
        await asyncio.sleep(1.6)
    raw.close()


async def test_calls_earn_credit_for_the_frames_clients_send_with_them(serve: Callable[..., object]) -> None:
    """A client's WINDOW_UPDATEs and PINGs that come with its calls (grpcio sends a stream
    WINDOW_UPDATE with each request, a connection one after answers, BDP pings) are allowed in
    proportion to the calls; the flat budget alone would cut this client off."""
    server, _ = await serve(flood_frames_per_s=100)  # type: ignore[operator]
    raw, _connection = await _open(server)
    sid = 1
    for _ in range(4):  # 4 x 50 calls with 3 cheap frames each: 600 within the second, over 100
        frames = []
        for _ in range(50):
            frames += [raw.call(sid), h2.frame(h2.WINDOW_UPDATE, 0, sid, u32(100)),
                       h2.frame(h2.WINDOW_UPDATE, 0, 0, u32(100)), h2.frame(h2.PING, 0, 0, b"bdp-ping")]
            sid += 2
        raw.send(*frames)
        assert (await raw.answer(sid - 2))[0]["grpc-status"] == "0"
    assert await raw.sync()
    raw.send(*[h2.frame(h2.PING, 0, 0, b"p" * 8)] * 2000)  # without calls: cut off
    code, _ = await raw.until_goaway()
    assert code == h2.ENHANCE_YOUR_CALM
    raw.close()


async def test_grpcio_never_trips_even_a_tight_flood_budget(serve: Callable[..., object]) -> None:
    """Many concurrent calls, large messages both ways (many WINDOW_UPDATEs and BDP pings) and
    sequential calls from one grpcio channel, under a flat budget of 20 frames a second."""
    server, _ = await serve(flood_frames_per_s=20)  # type: ignore[operator]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        echo, big = channel.unary_unary("/test.Edge/Echo"), channel.unary_unary("/test.Edge/Big")
        for _ in range(2):
            answers = await asyncio.gather(*[echo(str(i).encode() * 50) for i in range(500)])
            assert answers == [str(i).encode() * 50 for i in range(500)]
            payload = bytes(range(256)) * (3 * 4096 + 7)
            assert await echo(payload) == payload
            assert [len(a) for a in await asyncio.gather(*[big(str(2 << 20).encode()) for _ in range(4)])] == [
                2 << 20] * 4
            for i in range(200):
                assert await echo(b"%d" % i) == b"%d" % i


async def test_acks_owed_to_a_client_that_does_not_read_are_bounded(serve: Callable[..., object]) -> None:
    """While our write buffer is over its high water mark (asyncio's pause_writing) at most
    max_owed_acks PING / SETTINGS ACKs are queued; the next one cuts the client off. Frames
    already read when the pause comes are processed, so the bound is on what one read holds."""
    server, _ = await serve(flood_frames_per_s=10 ** 6, max_owed_acks=100)  # type: ignore[operator]
    raw, connection = await _open(server)
    pings = [h2.frame(h2.PING, 0, 0, b"p" * 8)] * 60
    settings = [h2.frame(h2.SETTINGS, 0, 0)] * 40
    connection.pause_writing()  # as asyncio calls it from a write crossing the high water mark
    connection.data_received(b"".join(pings + settings))  # 100: within the bound
    connection.resume_writing()  # the client read: nothing owed any more
    assert await raw.sync()
    connection.pause_writing()
    connection.data_received(b"".join(pings + settings + pings[:1]))
    code, debug = await raw.until_goaway()
    assert code == h2.ENHANCE_YOUR_CALM and b"ACKs owed" in debug
    raw.close()
    await gone(server, connection)


# --- settings ---------------------------------------------------------------------------------

async def test_the_gateway_settings_reach_the_native_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPLINE_GRPC_EDGE__IDLE_TIMEOUT_S", "7")
    monkeypatch.setenv("LOOPLINE_GRPC_EDGE__WRITE_STALL_TIMEOUT_S", "3")
    monkeypatch.setenv("LOOPLINE_GRPC_EDGE__FLOOD_FRAMES_PER_S", "50")
    settings = GatewaySettings()
    assert settings.grpc_edge == GrpcEdgeSettings(idle_timeout_s=7, write_stall_timeout_s=3, flood_frames_per_s=50)

    class Servicer:
        def handler(self) -> grpc.GenericRpcHandler:
            return _handlers(State())

    server = InferenceServer(Servicer(), "127.0.0.1", 0, 1 << 20, "native",  # type: ignore[arg-type]
                             settings.grpc_edge)
    await server.start()
    try:
        native = server._native
        assert native is not None
        limits = native.limits
        assert (limits.idle_timeout_s, limits.write_stall_timeout_s, limits.flood_frames_per_s) == (7, 3, 50)
        assert limits.max_message_bytes == 1 << 20 and native.sweep_s == 0.5
        assert GrpcEdgeSettings().model_dump() == {"idle_timeout_s": 300.0, "write_stall_timeout_s": 30.0,
                                                   "min_read_bytes_per_s": 1024, "flood_frames_per_s": 1000,
                                                   "request_timeout_s": 30.0}
    finally:
        await server.stop(1.0)
