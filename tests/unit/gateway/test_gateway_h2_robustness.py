"""A hostile second look at the native HTTP/2 gRPC edge (h2_edge): RFC 9113 / RFC 7541 points
one by one (accepted and refused cases, with the GOAWAY / RST_STREAM codes they must get),
resource bounds (write buffer under a client that does not read, per-DATA-frame work,
streams and tasks released after resets and deadlines) and a seeded frame fuzzer: after every
random or mutated frame sequence the loop still serves a well-formed grpcio call, nothing was
logged as unhandled and the connection's state is released."""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import struct
from collections.abc import AsyncIterator

import grpc
import hpack
import pytest
from h2_raw import MAX, Raw, message, u32

from loopline_serving_gateway.entrypoints import h2_edge as h2
from loopline_serving_gateway.entrypoints import h2_wire
from loopline_serving_gateway.entrypoints.h2_edge import NativeGrpcServer

def _handlers(state: dict[str, int]) -> grpc.GenericRpcHandler:
    async def echo(request: bytes, context: h2.ServicerContext) -> bytes:
        return request

    async def slow(request: bytes, context: h2.ServicerContext) -> bytes:
        state["slow"] = state.get("slow", 0) + 1
        try:
            seconds = min(float(request.decode()), 60.0)
        except ValueError:  # fuzzed bodies
            seconds = 0.0
        await asyncio.sleep(seconds)
        return b"done"

    async def big(request: bytes, context: h2.ServicerContext) -> bytes:
        return b"b" * int(request.decode())

    async def total(requests: AsyncIterator[bytes], context: h2.ServicerContext) -> bytes:
        count = 0
        async for request in requests:
            count += len(request)
        return str(count).encode()

    methods = {name: grpc.unary_unary_rpc_method_handler(fn) for name, fn in
               (("Echo", echo), ("Slow", slow), ("Big", big))}
    methods["Total"] = grpc.stream_unary_rpc_method_handler(total)
    return grpc.method_handlers_generic_handler("test.Edge", methods)


class Problems(logging.Handler):
    """ERROR records from the edge and from asyncio (unhandled task / callback exceptions)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record.getMessage())


@pytest.fixture
async def edge() -> AsyncIterator[tuple[NativeGrpcServer, dict[str, int], list[str]]]:
    state: dict[str, int] = {}
    problems = Problems()
    loggers = [logging.getLogger(h2.__name__), logging.getLogger("asyncio")]
    for logger in loggers:
        logger.addHandler(problems)
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, ctx: problems.records.append(
        f"{ctx.get('message')} {ctx.get('exception')!r} {ctx.get('task') or ctx.get('future')}"))
    server = NativeGrpcServer([_handlers(state)], "127.0.0.1", 0, 1 << 20)
    await server.start()
    yield server, state, problems.records
    await server.stop(1.0)
    loop.set_exception_handler(previous)
    for logger in loggers:
        logger.removeHandler(problems)


async def _serves(server: NativeGrpcServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        assert await channel.unary_unary("/test.Edge/Echo")(b"still here", timeout=5) == b"still here"


async def _released(server: NativeGrpcServer, connection: h2.H2Connection) -> None:
    """The connection is gone from the server and holds no stream, byte or running task."""
    for _ in range(200):
        if connection not in server.connections:
            break
        await asyncio.sleep(0.005)
    assert connection not in server.connections
    await asyncio.sleep(0)
    assert connection._streams == {}
    assert connection._held == 0, f"{connection._held} request bytes still counted"


def _only_connection(server: NativeGrpcServer, before: set[h2.H2Connection]) -> h2.H2Connection:
    (connection,) = server.connections - before
    return connection


# --- connection-level errors: the GOAWAY code each one gets ---------------------------------

GOAWAY_CASES = {
    "window update over 2^31-1 on the connection": (
        lambda raw: [h2.frame(h2.WINDOW_UPDATE, 0, 0, u32(MAX)), h2.frame(h2.WINDOW_UPDATE, 0, 0, u32(MAX))],
        h2.FLOW_CONTROL_ERROR),
    "zero window update on the connection": (
        lambda raw: [h2.frame(h2.WINDOW_UPDATE, 0, 0, u32(0))], h2.PROTOCOL_ERROR),
    "window update of 3 bytes": (
        lambda raw: [h2.frame(h2.WINDOW_UPDATE, 0, 0, b"\x00\x00\x01")], h2.FRAME_SIZE_ERROR),
    "initial window size over 2^31-1": (
        lambda raw: [h2.frame(h2.SETTINGS, 0, 0, struct.pack(">HI", h2.S_INITIAL_WINDOW_SIZE, MAX + 1))],
        h2.FLOW_CONTROL_ERROR),
    "a SETTINGS change pushing an open stream's window over 2^31-1": (
        lambda raw: [h2.frame(h2.HEADERS, h2.END_HEADERS, 1, raw.block("/test.Edge/Slow")),
                     h2.frame(h2.WINDOW_UPDATE, 0, 1, u32(MAX - (1 << 20))),  # exactly 2^31-1: accepted
                     h2.frame(h2.SETTINGS, 0, 0, struct.pack(">HI", h2.S_INITIAL_WINDOW_SIZE, (1 << 20) + 1))],
        h2.FLOW_CONTROL_ERROR),
    "max frame size below 16384": (
        lambda raw: [h2.frame(h2.SETTINGS, 0, 0, struct.pack(">HI", h2.S_MAX_FRAME_SIZE, 100))],
        h2.PROTOCOL_ERROR),
    "enable push 2": (
        lambda raw: [h2.frame(h2.SETTINGS, 0, 0, struct.pack(">HI", h2.S_ENABLE_PUSH, 2))], h2.PROTOCOL_ERROR),
    "SETTINGS of 5 bytes": (lambda raw: [h2.frame(h2.SETTINGS, 0, 0, b"\x00" * 5)], h2.FRAME_SIZE_ERROR),
    "SETTINGS ACK with a payload": (
        lambda raw: [h2.frame(h2.SETTINGS, h2.ACK, 0, b"\x00" * 6)], h2.FRAME_SIZE_ERROR),
    "SETTINGS on a stream": (lambda raw: [h2.frame(h2.SETTINGS, 0, 1)], h2.PROTOCOL_ERROR),
    "PING of 7 bytes": (lambda raw: [h2.frame(h2.PING, 0, 0, b"\x00" * 7)], h2.FRAME_SIZE_ERROR),
    "PING on a stream": (lambda raw: [h2.frame(h2.PING, 0, 1, b"\x00" * 8)], h2.PROTOCOL_ERROR),
    "DATA on stream 0": (lambda raw: [h2.frame(h2.DATA, 0, 0, b"x")], h2.PROTOCOL_ERROR),
    "DATA on an idle stream": (lambda raw: [h2.frame(h2.DATA, 0, 9, b"x")], h2.PROTOCOL_ERROR),
    "HEADERS on an even stream": (
        lambda raw: [h2.frame(h2.HEADERS, h2.END_HEADERS, 2, raw.block())], h2.PROTOCOL_ERROR),
    "HEADERS on stream 0": (
        lambda raw: [h2.frame(h2.HEADERS, h2.END_HEADERS, 0, raw.block())], h2.PROTOCOL_ERROR),
    "a stream depending on itself": (
        lambda raw: [h2.frame(h2.HEADERS, h2.END_HEADERS | h2.PRIORITY_FLAG, 1, u32(1) + b"\x10" + raw.block())],
        h2.PROTOCOL_ERROR),
    "padding longer than the frame": (
        lambda raw: [h2.frame(h2.HEADERS, h2.END_HEADERS | h2.PADDED, 1, b"\xff" + raw.block())],
        h2.PROTOCOL_ERROR),
    "RST_STREAM on an idle stream": (lambda raw: [h2.frame(h2.RST_STREAM, 0, 7, u32(0))], h2.PROTOCOL_ERROR),
    "RST_STREAM on stream 0": (lambda raw: [h2.frame(h2.RST_STREAM, 0, 0, u32(0))], h2.PROTOCOL_ERROR),
    "RST_STREAM of 3 bytes": (
        lambda raw: [raw.call(1), h2.frame(h2.RST_STREAM, 0, 1, b"\x00\x00\x00")], h2.FRAME_SIZE_ERROR),
    "WINDOW_UPDATE on an idle stream": (
        lambda raw: [h2.frame(h2.WINDOW_UPDATE, 0, 11, u32(1))], h2.PROTOCOL_ERROR),
    "PUSH_PROMISE from a client": (lambda raw: [h2.frame(h2.PUSH_PROMISE, 0, 1, u32(2))], h2.PROTOCOL_ERROR),
    "GOAWAY on a stream": (lambda raw: [h2.frame(h2.GOAWAY, 0, 1, u32(0) * 2)], h2.PROTOCOL_ERROR),
    "PRIORITY on stream 0": (lambda raw: [h2.frame(h2.PRIORITY, 0, 0, b"\x00" * 5)], h2.PROTOCOL_ERROR),
    "a frame over our max frame size": (
        lambda raw: [struct.pack(">HBBBI", 0x2000, 0x00, h2.DATA, 0, 1)],  # 2 MiB declared
        h2.FRAME_SIZE_ERROR),
    "a header block interrupted by PING": (
        lambda raw: [h2.frame(h2.HEADERS, 0, 1, raw.block()[:3]), h2.frame(h2.PING, 0, 0, b"\x00" * 8)],
        h2.PROTOCOL_ERROR),
    "CONTINUATION on another stream": (
        lambda raw: [h2.frame(h2.HEADERS, 0, 1, raw.block()[:3]), h2.frame(h2.CONTINUATION, h2.END_HEADERS, 3)],
        h2.PROTOCOL_ERROR),
    "CONTINUATION without HEADERS": (
        lambda raw: [h2.frame(h2.CONTINUATION, h2.END_HEADERS, 1, raw.block())], h2.PROTOCOL_ERROR),
    "an endless CONTINUATION block": (
        lambda raw: [h2.frame(h2.HEADERS, 0, 1, raw.block()[:3])]
        + [h2.frame(h2.CONTINUATION, 0, 1, b"\x00" * 16000)] * 5, h2.ENHANCE_YOUR_CALM),  # the 5th crosses 65 KiB
    "a HPACK table size update over our table": (
        lambda raw: [h2.frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, 1, b"\x3f\xe1\x7f" + raw.block())],
        h2.COMPRESSION_ERROR),
    "a HPACK table size update after a field": (
        lambda raw: [h2.frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, 1, raw.block() + b"\x20")],
        h2.COMPRESSION_ERROR),
    "a HPACK index past the tables": (
        lambda raw: [h2.frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, 1, b"\xff\x80\x01")],
        h2.COMPRESSION_ERROR),
    "a header list over 16 KiB": (
        lambda raw: [h2.frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, 1,
                              raw.block("/test.Edge/Echo", ("x-big", "v" * 20000)))],
        h2.ENHANCE_YOUR_CALM),
    "trailers without END_STREAM": (
        lambda raw: [h2.frame(h2.HEADERS, h2.END_HEADERS, 1, raw.block("/test.Edge/Slow")),
                     h2.frame(h2.HEADERS, h2.END_HEADERS, 1, raw.block("", ("x-t", "1"), base=False))],
        h2.PROTOCOL_ERROR),
}


@pytest.mark.parametrize("case", sorted(GOAWAY_CASES))
async def test_connection_errors_get_their_goaway_code_and_only_that_connection_closes(
        edge: tuple[NativeGrpcServer, dict[str, int], list[str]], case: str) -> None:
    server, _, problems = edge
    build, code = GOAWAY_CASES[case]
    before = set(server.connections)
    raw = await Raw.open(server.port, struct.pack(">HI", h2.S_INITIAL_WINDOW_SIZE, 1 << 20))
    assert await raw.sync(), "the connection must be up before the bad frame"
    connection = _only_connection(server, before)
    raw.send(*build(raw))
    assert await raw.goaway() == code
    raw.close()
    await _released(server, connection)
    await _serves(server)
    assert problems == []


async def test_the_goaway_reaches_a_client_still_sending_after_the_error(
        edge: tuple[NativeGrpcServer, dict[str, int], list[str]]) -> None:
    """A connection error while more of the client's frames are on their way: closing the socket
    with unread input makes the kernel send RST, which can destroy the GOAWAY before the client
    reads it. The client must still get the GOAWAY and its code."""
    server, _, problems = edge
    for _ in range(5):
        raw = await Raw.open(server.port)
        assert await raw.sync()
        raw.send(h2.frame(h2.WINDOW_UPDATE, 0, 0, u32(0)),
                 *[h2.frame(h2.PING, 0, 0, b"x" * 8)] * 40000)  # ~680 KB behind the error
        assert await raw.goaway() == h2.PROTOCOL_ERROR
        raw.close()
    await _serves(server)
    assert problems == []


# --- stream-level errors and accepted cases --------------------------------------------------

async def test_stream_window_errors_reset_only_that_stream(
        edge: tuple[NativeGrpcServer, dict[str, int], list[str]]) -> None:
    server, _, problems = edge
    raw = await Raw.open(server.port)
    slow = h2.frame(h2.HEADERS, h2.END_HEADERS, 1, raw.block("/test.Edge/Slow"))
    raw.send(slow, h2.frame(h2.WINDOW_UPDATE, 0, 1, u32(0)))
    assert await raw.reset_code(1) == h2.PROTOCOL_ERROR  # zero increment: stream error (RFC 9113 6.9)
    raw.send(h2.frame(h2.HEADERS, h2.END_HEADERS, 3, raw.block("/test.Edge/Slow")),
             h2.frame(h2.WINDOW_UPDATE, 0, 3, u32(MAX)))
    assert await raw.reset_code(3) == h2.FLOW_CONTROL_ERROR  # 65535 + 2^31-1 overflows
    # accepted: the largest legal increments, on the connection and a stream
    raw.send(h2.frame(h2.WINDOW_UPDATE, 0, 0, u32(MAX - 65535)), raw.call(5, b"ok"),
             h2.frame(h2.WINDOW_UPDATE, 0, 5, u32(MAX - 65535)))
    headers, data = await raw.answer(5)
    assert headers["grpc-status"] == "0" and data == message(b"ok")
    # a zero WINDOW_UPDATE on a closed stream is not an error; the connection goes on
    raw.send(h2.frame(h2.WINDOW_UPDATE, 0, 5, u32(0)), raw.call(7, b"again"))
    assert (await raw.answer(7))[1] == message(b"again")
    raw.close()
    assert problems == []


async def test_data_and_headers_after_end_stream_are_stream_closed(
        edge: tuple[NativeGrpcServer, dict[str, int], list[str]]) -> None:
    server, _, problems = edge
    before = set(server.connections)
    raw = await Raw.open(server.port)
    assert await raw.sync()
    connection = _only_connection(server, before)
    raw.send(h2.frame(h2.HEADERS, h2.END_HEADERS, 1, raw.block("/test.Edge/Slow")),
             h2.frame(h2.DATA, h2.END_STREAM, 1, message(b"5")), h2.frame(h2.DATA, 0, 1, b"late"))
    assert await raw.reset_code(1) == h2.STREAM_CLOSED
    raw.send(h2.frame(h2.HEADERS, h2.END_HEADERS, 3, raw.block("/test.Edge/Slow")),
             h2.frame(h2.DATA, h2.END_STREAM, 3, message(b"5")),
             h2.frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, 3, raw.block("", ("x-t", "1"), base=False)))
    assert await raw.reset_code(3) == h2.STREAM_CLOSED
    assert await raw.sync()
    assert connection._streams == {}  # both calls cancelled, nothing left behind
    # client trailers (HEADERS with END_STREAM after DATA) are accepted
    raw.send(h2.frame(h2.HEADERS, h2.END_HEADERS, 5, raw.block()), h2.frame(h2.DATA, 0, 5, message(b"t")),
             h2.frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, 5, raw.block("", ("x-t", "1"), base=False)))
    assert (await raw.answer(5))[1] == message(b"t")
    # DATA and HEADERS for a stream already answered are dropped, not errors
    raw.send(h2.frame(h2.DATA, 0, 5, b"late"), h2.frame(h2.HEADERS, h2.END_HEADERS, 5, raw.block()),
             raw.call(7, b"next"))
    assert (await raw.answer(7))[1] == message(b"next")
    raw.close()
    await _released(server, connection)
    assert problems == []


MALFORMED = {
    "upper-case name": [("X-Upper", "1")],
    "connection header": [("connection", "keep-alive")],
    "transfer-encoding": [("transfer-encoding", "chunked")],
    "te other than trailers": [("te", "gzip")],
    "pseudo-header after a regular one": [("x-a", "1"), (":authority", "y")],
    "unknown pseudo-header": [(":status", "200")],
    "CR LF in a value": [("x-a", "1\r\nx-injected: 2")],
    "NUL in a value": [("x-a", "a\x00b")],
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
async def test_malformed_requests_are_reset_with_protocol_error(
        edge: tuple[NativeGrpcServer, dict[str, int], list[str]], case: str) -> None:
    server, _, problems = edge
    raw = await Raw.open(server.port)
    raw.send(h2.frame(h2.HEADERS, h2.END_HEADERS, 1, raw.block("/test.Edge/Echo", *MALFORMED[case])),
             h2.frame(h2.DATA, h2.END_STREAM, 1, message(b"x")))
    assert await raw.reset_code(1) == h2.PROTOCOL_ERROR
    raw.send(raw.call(3, b"fine"))  # the HPACK state followed: the next request decodes
    assert (await raw.answer(3))[1] == message(b"fine")
    raw.close()
    assert problems == []


@pytest.mark.parametrize("twice", [":path", ":method"])
async def test_a_repeated_pseudo_header_is_malformed(
        edge: tuple[NativeGrpcServer, dict[str, int], list[str]], twice: str) -> None:
    server, _, problems = edge
    raw = await Raw.open(server.port)
    headers = [(":method", "POST"), (":scheme", "http"), (":path", "/test.Edge/Echo"), (":authority", "x")]
    headers.append((twice, dict(headers)[twice]))
    block = raw.encoder.encode([*headers, ("content-type", "application/grpc"), ("te", "trailers")])
    raw.send(h2.frame(h2.HEADERS, h2.END_HEADERS, 1, block), h2.frame(h2.DATA, h2.END_STREAM, 1, message(b"x")))
    assert await raw.reset_code(1) == h2.PROTOCOL_ERROR
    raw.send(raw.call(3, b"fine"))
    assert (await raw.answer(3))[1] == message(b"fine")
    raw.close()
    assert problems == []


async def test_a_request_without_path_is_reset_and_one_without_method_too(
        edge: tuple[NativeGrpcServer, dict[str, int], list[str]]) -> None:
    server, _, problems = edge
    raw = await Raw.open(server.port)
    raw.send(h2.frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, 1,
                      raw.encoder.encode([(":method", "POST"), ("content-type", "application/grpc")])),
             h2.frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, 3,
                      raw.encoder.encode([(":path", "/test.Edge/Echo"), ("content-type", "application/grpc")])))
    assert await raw.reset_code(1) == h2.PROTOCOL_ERROR
    assert await raw.reset_code(3) == h2.PROTOCOL_ERROR
    raw.close()
    assert problems == []


async def test_streams_over_the_concurrency_limit_are_refused_and_a_reused_id_is_ignored() -> None:
    server = NativeGrpcServer([_handlers({})], "127.0.0.1", 0, 1 << 20,
                              limits=h2.Limits(1 << 20, max_concurrent_streams=2))
    await server.start()
    try:
        raw = await Raw.open(server.port)
        raw.send(*[h2.frame(h2.HEADERS, h2.END_HEADERS, sid, raw.block("/test.Edge/Slow")) for sid in (1, 3, 5)])
        assert await raw.reset_code(5) == h2.REFUSED_STREAM
        raw.send(h2.frame(h2.DATA, h2.END_STREAM, 3, message(b"0")))
        assert (await raw.answer(3))[1] == message(b"done")
        raw.send(h2.frame(h2.DATA, h2.END_STREAM, 1, message(b"0")))
        assert (await raw.answer(1))[1] == message(b"done")
        raw.send(raw.call(3, b"reused"), raw.call(9, b"ok"))  # an old id: neither a new stream nor an error
        assert (await raw.answer(9))[1] == message(b"ok")
        assert await raw.sync()
        assert all(frame[2] != 3 for frame in raw.frames[-3:])
        raw.close()
    finally:
        await server.stop(1.0)


# --- resource bounds --------------------------------------------------------------------------

async def test_a_client_that_does_not_read_cannot_grow_our_write_buffer(
        edge: tuple[NativeGrpcServer, dict[str, int], list[str]]) -> None:
    """PING / SETTINGS floods (CVE-2019-9512/9515) and answers under huge advertised windows:
    what we queue for a client that never reads stays bounded (we stop reading it)."""
    server, _, problems = edge
    before = set(server.connections)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    sock.setblocking(False)
    await asyncio.sleep(0.01)
    connection = _only_connection(server, before)
    encoder = hpack.Encoder()
    block = encoder.encode([(":method", "POST"), (":scheme", "http"), (":path", "/test.Edge/Big"),
                            (":authority", "x"), ("content-type", "application/grpc"), ("te", "trailers")])
    flood = [h2.PREFACE, h2.frame(h2.SETTINGS, 0, 0, struct.pack(">HI", h2.S_INITIAL_WINDOW_SIZE, MAX)),
             h2.frame(h2.WINDOW_UPDATE, 0, 0, u32(MAX - 65535))]
    for sid in range(1, 40, 2):  # 20 answers of 64 KiB the client's windows allow at once
        flood.append(h2.frame(h2.HEADERS, h2.END_HEADERS, sid, block)
                     + h2.frame(h2.DATA, h2.END_STREAM, sid, message(b"65536")))
    flood += [h2.frame(h2.PING, 0, 0, b"p" * 8), h2.frame(h2.SETTINGS, 0, 0)] * 300_000
    wire = memoryview(b"".join(flood))
    loop = asyncio.get_running_loop()
    sent, largest = 0, 0
    progress = loop.time()
    while sent < len(wire) and loop.time() - progress < 1.0:  # until the server stops taking any
        try:
            sent += sock.send(wire[sent:sent + 65536])
            progress = loop.time()
        except BlockingIOError:
            await asyncio.sleep(0.005)
        transport = connection._transport
        assert transport is not None
        largest = max(largest, transport.get_write_buffer_size())
    sock.close()
    assert largest < 3 << 20, f"{largest} bytes queued for a client that does not read"
    assert sent < len(wire), "the server kept reading a client that never reads"
    await _released(server, connection)
    await _serves(server)
    assert problems == []


class _CountingStruct:
    """struct.Struct ``_U32`` with its ``unpack_from`` calls counted (the message-prefix scan)."""

    def __init__(self, real: struct.Struct) -> None:
        self.real = real
        self.calls = 0

    def pack(self, *args: int) -> bytes:
        return self.real.pack(*args)

    def unpack(self, data: bytes) -> tuple[int, ...]:
        return self.real.unpack(data)

    def unpack_from(self, data: bytes | bytearray, offset: int = 0) -> tuple[int, ...]:
        self.calls += 1
        return self.real.unpack_from(data, offset)


async def test_message_prefixes_are_scanned_once_not_once_per_data_frame(
        edge: tuple[NativeGrpcServer, dict[str, int], list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    """A body of many small messages sent in tiny DATA frames must cost work linear in its size
    (rescanning every prefix on every frame is quadratic: a CPU hog that blocks the whole loop)."""
    server, _, problems = edge
    counting = _CountingStruct(h2.U32)
    monkeypatch.setattr(h2, "U32", counting)
    raw = await Raw.open(server.port)
    messages = 2000
    body = message(b"") * messages
    frames = [h2.frame(h2.HEADERS, h2.END_HEADERS, 1, raw.block("/test.Edge/Total"))]
    frames += [h2.frame(h2.DATA, 0, 1, body[i:i + 10]) for i in range(0, len(body), 10)]
    frames.append(h2.frame(h2.DATA, h2.END_STREAM, 1, b""))
    raw.send(*frames)
    headers, data = await raw.answer(1)
    assert headers["grpc-status"] == "0" and data == message(b"0")
    assert counting.calls < 5 * messages, f"{counting.calls} prefix reads for {messages} messages"
    counting.calls = 0
    # the same for a unary call (refused at its end for holding more than one message)
    frames = [h2.frame(h2.HEADERS, h2.END_HEADERS, 3, raw.block("/test.Edge/Echo"))]
    frames += [h2.frame(h2.DATA, 0, 3, body[i:i + 10]) for i in range(0, len(body), 10)]
    frames.append(h2.frame(h2.DATA, h2.END_STREAM, 3, b""))
    raw.send(*frames)
    headers, _ = await raw.answer(3)
    assert headers["grpc-status"] == str(grpc.StatusCode.INTERNAL.value[0])
    assert counting.calls < 5 * messages, f"{counting.calls} prefix reads for {messages} messages"
    raw.close()
    assert problems == []


async def test_resets_and_deadlines_leave_no_stream_task_or_byte_behind(
        edge: tuple[NativeGrpcServer, dict[str, int], list[str]]) -> None:
    server, state, problems = edge
    before = set(server.connections)
    raw = await Raw.open(server.port)
    assert await raw.sync()
    connection = _only_connection(server, before)
    frames = []
    for sid in range(1, 100, 2):  # reset while running, reset half-sent, deadline expiry
        kind = sid % 6
        if kind == 1:
            frames += [raw.call(sid, b"30", "/test.Edge/Slow"), h2.frame(h2.RST_STREAM, 0, sid, u32(h2.CANCEL))]
        elif kind == 3:
            frames += [h2.frame(h2.HEADERS, h2.END_HEADERS, sid, raw.block("/test.Edge/Echo")),
                       h2.frame(h2.DATA, 0, sid, message(b"x" * 100)[:50]),
                       h2.frame(h2.RST_STREAM, 0, sid, u32(h2.CANCEL))]
        else:
            frames += [h2.frame(h2.HEADERS, h2.END_HEADERS, sid,
                                raw.block("/test.Edge/Slow", ("grpc-timeout", "20m"))),
                       h2.frame(h2.DATA, h2.END_STREAM, sid, message(b"30"))]
    raw.send(*frames)
    assert await raw.sync()
    await asyncio.sleep(0.1)  # the deadlines pass
    assert await raw.sync()
    assert connection._streams == {}
    assert connection._held == 0
    assert not connection.busy()
    assert _running_calls() == []
    assert state["slow"] > 0
    raw.close()
    await _released(server, connection)
    assert problems == []


async def test_the_decoded_header_cache_stays_small_under_large_distinct_blocks(
        edge: tuple[NativeGrpcServer, dict[str, int], list[str]]) -> None:
    """Blocks that leave the HPACK table alone are cached per connection (256 of them): large ones
    (up to the 16 KiB header list, more bytes once Huffman-coded) must not be, or each connection
    can pin megabytes of cache."""
    server, _, problems = edge
    before = set(server.connections)
    raw = await Raw.open(server.port)
    assert await raw.sync()
    connection = _only_connection(server, before)
    for sid in range(1, 500, 2):  # 250 blocks, under the 256 at which the cache is emptied
        block = raw.block("/test.Edge/Echo", hpack.NeverIndexedHeaderTuple("x-pad", f"{sid:06d}" * 2000))
        raw.send(h2.frame(h2.HEADERS, h2.END_HEADERS, sid, block),
                 h2.frame(h2.DATA, h2.END_STREAM, sid, message(b"ok")))
    assert await raw.sync()
    cached = sum(len(block) for block in connection._decoded)
    assert cached < 1 << 20, f"{cached} bytes of header blocks cached for one connection"
    raw.send(raw.call(501, b"small"), raw.call(503, b"small"))  # small repeated blocks are still cached
    assert (await raw.answer(503))[1] == message(b"small")
    assert connection._decoded
    raw.close()
    assert problems == []


@pytest.mark.parametrize("trigger", ["zero window update", "data after end of stream"])
async def test_streams_the_client_makes_us_reset_count_like_its_own_resets(
        edge: tuple[NativeGrpcServer, dict[str, int], list[str]], trigger: str) -> None:
    """"MadeYouReset" (CVE-2025-8671): a call started, then a frame that makes the server reset it;
    repeated, it is rapid reset without RST_STREAM from the client, and must be cut off the same way."""
    server, _, problems = edge
    raw = await Raw.open(server.port)
    frames = []
    for sid in range(1, 2 * 1100, 2):
        frames.append(raw.call(sid, b"5", "/test.Edge/Slow"))
        if trigger == "zero window update":
            frames.append(h2.frame(h2.WINDOW_UPDATE, 0, sid, u32(0)))
        else:
            frames.append(h2.frame(h2.DATA, 0, sid, b"late"))
    raw.send(*frames)
    assert await raw.goaway() == h2.ENHANCE_YOUR_CALM
    raw.close()
    await _serves(server)
    assert problems == []


async def test_messages_queued_for_a_slow_client_streaming_handler_count_towards_the_connection_buffer() -> None:
    """A client-streaming handler slower than its client: the messages waiting for it are held by
    the connection like unfinished requests (bounded by connection_buffer, over it the stream gets
    RESOURCE_EXHAUSTED) and released as the handler takes them, or when the call ends."""
    gate = asyncio.Event()

    async def hold(requests: AsyncIterator[bytes], context: h2.ServicerContext) -> bytes:
        total = 0
        async for request in requests:
            await gate.wait()
            total += len(request)
            if request == b"stop":
                break  # answers without reading the rest
        return str(total).encode()

    handlers = grpc.method_handlers_generic_handler(
        "test.Hold", {"Hold": grpc.stream_unary_rpc_method_handler(hold)})
    server = NativeGrpcServer([handlers], "127.0.0.1", 0, 1 << 20,
                              limits=h2.Limits(1 << 20, connection_buffer=256 << 10))
    await server.start()
    try:
        before = set(server.connections)
        raw = await Raw.open(server.port)
        assert await raw.sync()
        connection = _only_connection(server, before)
        chunk = message(b"m" * 1000)
        raw.send(h2.frame(h2.HEADERS, h2.END_HEADERS, 1, raw.block("/test.Hold/Hold")),
                 *[h2.frame(h2.DATA, 0, 1, chunk * 16) for _ in range(64)])  # 1 MiB the handler cannot take yet
        headers, _ = await raw.answer(1)
        assert headers["grpc-status"] == str(grpc.StatusCode.RESOURCE_EXHAUSTED.value[0])
        assert "over its limit" in headers["grpc-message"]
        assert await raw.sync()
        assert connection._held == 0
        # a handler that keeps up is never refused, and a handler that stops early releases the rest
        gate.set()
        raw.send(h2.frame(h2.HEADERS, h2.END_HEADERS, 3, raw.block("/test.Hold/Hold")),
                 *[h2.frame(h2.DATA, 0, 3, chunk * 4) for _ in range(8)],
                 h2.frame(h2.DATA, 0, 3, message(b"stop") + chunk * 8))
        headers, data = await raw.answer(3)
        assert headers["grpc-status"] == "0" and data == message(str(32 * 1000 + 4).encode())
        raw.send(h2.frame(h2.DATA, h2.END_STREAM, 3, b""))
        assert await raw.sync()
        assert connection._held == 0
        raw.close()
    finally:
        await server.stop(1.0)


def _running_calls() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if "H2Connection._call" in repr(t.get_coro()) and not t.done()]


@pytest.mark.parametrize("over", ["message limit", "connection buffer"])
async def test_a_client_stream_refused_mid_call_cancels_its_running_handler(
        edge: tuple[NativeGrpcServer, dict[str, int], list[str]], over: str) -> None:
    """A client-streaming handler already waiting for its next message, then the stream is refused
    (a message over the limit, or the connection's buffer): the handler must end with it, not be
    left waiting forever on an inbox nobody feeds (garbage-collected while pending)."""
    server, _, problems = edge
    if over == "connection buffer":
        server.limits.connection_buffer = 64 << 10
    raw = await Raw.open(server.port)
    raw.send(h2.frame(h2.HEADERS, h2.END_HEADERS, 1, raw.block("/test.Edge/Total")),
             h2.frame(h2.DATA, 0, 1, message(b"first")))
    assert await raw.sync()
    await asyncio.sleep(0.01)
    assert len(_running_calls()) == 1  # the handler runs, waiting for more
    if over == "message limit":
        raw.send(h2.frame(h2.DATA, 0, 1, struct.pack(">BI", 0, 2 << 20)))
    else:
        raw.send(h2.frame(h2.DATA, 0, 1, struct.pack(">BI", 0, 100 << 10) + b"x" * (65 << 10)))
    headers, _ = await raw.answer(1)
    assert headers["grpc-status"] == str(grpc.StatusCode.RESOURCE_EXHAUSTED.value[0])
    assert await raw.sync()
    await asyncio.sleep(0.01)
    assert _running_calls() == []
    raw.close()
    assert problems == []


async def test_drain_refuses_new_streams_and_finishes_the_running_one() -> None:
    server = NativeGrpcServer([_handlers({})], "127.0.0.1", 0, 1 << 20)
    await server.start()
    raw = await Raw.open(server.port)
    raw.send(raw.call(1, b"0.2", "/test.Edge/Slow"))
    assert await raw.sync()
    stopping = asyncio.create_task(server.stop(3.0))
    goaway = await raw.until(h2.GOAWAY)
    assert struct.unpack(">II", goaway[3][:8]) == (1, h2.NO_ERROR)
    raw.send(raw.call(3, b"late"))
    assert await raw.reset_code(3) == h2.REFUSED_STREAM
    assert (await raw.answer(1))[1] == message(b"done")
    await stopping
    for _ in range(100):
        if not server.connections:
            break
        await asyncio.sleep(0.01)
    assert server.connections == set()
    raw.close()


async def test_a_connection_that_never_completes_the_handshake_is_closed_and_one_that_did_stays() -> None:
    server = NativeGrpcServer([_handlers({})], "127.0.0.1", 0, 1 << 20,
                              limits=h2.Limits(1 << 20, handshake_timeout_s=0.2))
    await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(h2.PREFACE[:10])  # a socket that starts and never finishes the preface
        raw = await Raw.open(server.port)
        assert await raw.sync()
        silent = Raw(reader, writer)
        goaway = await silent.until(h2.GOAWAY)
        assert struct.unpack(">II", goaway[3][:8])[1] == h2.PROTOCOL_ERROR
        assert b"preface" in goaway[3][8:]
        assert await silent.read(timeout=3.0) is None  # and the connection is closed
        await asyncio.sleep(0.3)
        assert await raw.sync(), "a connection past its handshake is not timed out"
        await _serves(server)
        raw.close()
        silent.close()
    finally:
        await server.stop(1.0)


# --- seeded fuzzing ---------------------------------------------------------------------------

def _hostile_frame(rng: random.Random, raw: Raw, next_id: list[int]) -> bytes:
    """Any frame type, flags, stream id and payload (mostly wrong)."""
    kind = rng.choice([h2.DATA, h2.HEADERS, h2.PRIORITY, h2.RST_STREAM, h2.SETTINGS, h2.PING, h2.GOAWAY,
                       h2.WINDOW_UPDATE, h2.CONTINUATION, h2.PUSH_PROMISE, rng.randrange(256)])
    flags = rng.randrange(256)
    sid = rng.choice([0, next_id[0], max(next_id[0] - 2, 0), next_id[0] + 1, rng.getrandbits(32)])
    return h2.frame(kind, flags, sid, rng.randbytes(rng.randrange(24)))


def _plausible_frame(rng: random.Random, raw: Raw, next_id: list[int]) -> bytes:
    """A frame a sloppy but honest client could send, on the stream in progress or a new one."""
    sid = next_id[0]
    pick = rng.randrange(12)
    if pick < 3:  # a new stream's headers, sometimes split into CONTINUATIONs, sometimes ending it
        next_id[0] += 2
        sid = next_id[0]
        path = rng.choice(["/test.Edge/Echo", "/test.Edge/Echo", "/test.Edge/Total", "/test.Edge/Slow", "/nope"])
        extra = rng.choice([[], [], [("grpc-timeout", "1m")], [("grpc-encoding", "gzip")], [("x-bin", "@@")],
                            [("grpc-timeout", "x")], [("content-type", "text/plain")], [("x-key", "v" * 300)]])
        block = raw.block(path, *extra)
        end = h2.END_STREAM if rng.random() < 0.2 else 0
        if rng.random() < 0.3:
            cut = rng.randrange(len(block) + 1)
            return (h2.frame(h2.HEADERS, end, sid, block[:cut])
                    + h2.frame(h2.CONTINUATION, h2.END_HEADERS, sid, block[cut:]))
        if rng.random() < 0.2:
            return h2.frame(h2.HEADERS, end | h2.END_HEADERS | h2.PADDED | h2.PRIORITY_FLAG, sid,
                            b"\x03" + u32(sid + 2) + b"\x10" + block + b"\x00\x00\x00")
        return h2.frame(h2.HEADERS, end | h2.END_HEADERS, sid, block)
    if pick < 6:
        body = rng.choice([message(b"0"), message(b"0.001"), message(b"x" * rng.randrange(100)),
                           b"\x01\x00\x00\x00\x03abc", b"\x00\xff\xff\xff\xff", message(b"")[:3],
                           message(b"") * rng.randrange(1, 50)])
        flags = h2.END_STREAM if rng.random() < 0.6 else 0
        if rng.random() < 0.2:
            return h2.frame(h2.DATA, flags | h2.PADDED, sid, b"\x02" + body + b"\x00\x00")
        return h2.frame(h2.DATA, flags, sid, body)
    if pick == 6:
        key = rng.choice([h2_wire.S_HEADER_TABLE_SIZE, h2.S_ENABLE_PUSH, h2.S_MAX_CONCURRENT_STREAMS,
                          h2.S_INITIAL_WINDOW_SIZE, h2.S_MAX_FRAME_SIZE, h2.S_MAX_HEADER_LIST_SIZE, 0x99])
        value = rng.choice([0, 1, 100, 16384, 65535, 1 << 20, MAX])
        return h2.frame(h2.SETTINGS, 0, 0, struct.pack(">HI", key, value))
    if pick == 7:
        return h2.frame(h2.WINDOW_UPDATE, 0, rng.choice([0, sid]), u32(rng.choice([0, 1, 1 << 20, MAX])))
    if pick == 8:
        return h2.frame(h2.RST_STREAM, 0, sid, u32(rng.choice([h2.NO_ERROR, h2.CANCEL, 0x77])))
    if pick == 9:
        return h2.frame(h2.PRIORITY, 0, sid or 1, u32(0) + b"\x10")
    if pick == 10:
        return h2.frame(h2.PING, rng.choice([0, h2.ACK]), 0, rng.randbytes(8))
    return h2.frame(0x20 + rng.randrange(20), rng.randrange(256), sid, rng.randbytes(rng.randrange(10)))


def _mutate(rng: random.Random, wire: bytes) -> bytes:
    data = bytearray(wire)
    for _ in range(rng.randrange(1, 6)):
        choice = rng.random()
        if not data:
            break
        at = rng.randrange(len(data))
        if choice < 0.5:
            data[at] = rng.randrange(256)
        elif choice < 0.7:
            del data[at:at + rng.randrange(1, 8)]
        elif choice < 0.9:
            data[at:at] = rng.randbytes(rng.randrange(1, 8))
        else:
            data[at] ^= 1 << rng.randrange(8)
    return bytes(data)


def _complete(wire: bytes) -> bytes:
    """``wire`` with zeros appended so that it ends on a frame boundary (as the server parses it):
    a sync PING after it is then read as a frame, not swallowed by an unfinished one."""
    for _ in range(4):
        offset = 0
        while len(wire) - offset >= 9:
            length = int.from_bytes(wire[offset:offset + 3], "big")
            if length > 1 << 20:
                return wire  # the server refuses this frame (FRAME_SIZE_ERROR) before its payload
            offset += 9 + length
        if offset == len(wire):
            return wire
        wire += bytes(9 - (len(wire) - offset) if offset < len(wire) else offset - len(wire))
    return wire


async def test_seeded_frame_fuzz_leaves_the_edge_serving_and_releases_every_connection(
        edge: tuple[NativeGrpcServer, dict[str, int], list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    server, _, problems = edge
    made: list[h2.H2Connection] = []
    connection_made = h2.H2Connection.connection_made

    def recording(self: h2.H2Connection, transport: asyncio.BaseTransport) -> None:
        made.append(self)
        connection_made(self, transport)

    monkeypatch.setattr(h2.H2Connection, "connection_made", recording)
    outcomes = {"goaway": 0, "open": 0}
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        echo = channel.unary_unary("/test.Edge/Echo")
        for seed in range(1000):
            rng = random.Random(seed)
            made.clear()
            raw = await Raw.open(server.port)
            next_id = [1]
            frames = [_plausible_frame(rng, raw, next_id) for _ in range(rng.randrange(1, 30))]
            if seed % 3 == 1:
                frames.insert(rng.randrange(len(frames) + 1), _hostile_frame(rng, raw, next_id))
            if rng.random() < 0.5:  # well-formed calls mixed in
                next_id[0] += 2
                frames.append(raw.call(next_id[0], b"ok"))
            wire = b"".join(frames)
            if seed % 3 == 2:
                wire = _mutate(rng, wire)
            raw.send(_complete(wire))
            alive = await raw.sync(seed.to_bytes(8, "big"))
            (connection,) = made
            assert alive is not None, f"seed {seed}: neither an answer to PING nor a closed connection"
            outcomes["open" if alive else "goaway"] += 1
            raw.close()
            await _released(server, connection)
            assert problems == [], f"seed {seed}: {problems}"
            assert await echo(b"seed %d" % seed, timeout=5) == b"seed %d" % seed
            if seed % 50 == 0:
                await _serves(server)  # a fresh connection from a fresh grpcio channel
    print(outcomes)
    assert outcomes["goaway"] > 100 and outcomes["open"] > 100, outcomes  # both kinds of ending reached
