"""The native HTTP/2 gRPC edge (h2_edge) on loopback: grpcio clients for the gRPC side
(large messages and flow control, many streams, cancel, deadlines, metadata, gzip, drain),
and a raw-socket HTTP/2 client for framing (CONTINUATION, padding, priority, tiny DATA
frames, PING, malformed frames and bad HPACK closing only the offending connection)."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator

import grpc
import pytest
from h2_raw import Raw, message

from loopline_serving_gateway.entrypoints import h2_edge as h2
from loopline_serving_gateway.entrypoints.h2_edge import NativeGrpcServer, parse_timeout, percent_encode


class Recorder:
    def __init__(self) -> None:
        self.cancelled = asyncio.Event()
        self.started = asyncio.Event()
        self.metadata: dict[str, str | bytes] = {}


def _handlers(rec: Recorder) -> grpc.GenericRpcHandler:
    async def echo(request: bytes, context: h2.ServicerContext) -> bytes:
        rec.metadata = dict(context.invocation_metadata())
        context.set_trailing_metadata((("x-size", str(len(request))), ("x-echo-bin", b"\x00\xff\x10")))
        return request

    async def big(request: bytes, context: h2.ServicerContext) -> bytes:
        return bytes(range(256)) * (int(request.decode()) // 256)

    async def slow(request: bytes, context: h2.ServicerContext) -> bytes:
        rec.started.set()
        try:
            await asyncio.sleep(float(request.decode()))
        except asyncio.CancelledError:
            rec.cancelled.set()
            raise
        return b"done"

    async def fail(request: bytes, context: h2.ServicerContext) -> bytes:
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, request.decode())
        return b""

    async def crash(request: bytes, context: h2.ServicerContext) -> bytes:
        raise RuntimeError("boom")

    async def total(requests: AsyncIterator[bytes], context: h2.ServicerContext) -> bytes:
        count = 0
        async for request in requests:
            count += int(request.decode())
            rec.started.set()
        return str(count).encode()

    async def refuse(requests: AsyncIterator[bytes], context: h2.ServicerContext) -> AsyncIterator[bytes]:
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, "streams are refused here")
        yield b""

    methods = {name: grpc.unary_unary_rpc_method_handler(fn)
               for name, fn in (("Echo", echo), ("Big", big), ("Slow", slow), ("Fail", fail), ("Crash", crash))}
    methods["Total"] = grpc.stream_unary_rpc_method_handler(total)
    methods["Refuse"] = grpc.stream_stream_rpc_method_handler(refuse)
    return grpc.method_handlers_generic_handler("test.Edge", methods)


@pytest.fixture
async def served() -> AsyncIterator[tuple[NativeGrpcServer, Recorder]]:
    rec = Recorder()
    server = NativeGrpcServer([_handlers(rec)], "127.0.0.1", 0, 4 << 20)
    await server.start()
    yield server, rec
    await server.stop(1.0)


def _call(channel: grpc.aio.Channel, name: str) -> grpc.aio.UnaryUnaryMultiCallable:
    return channel.unary_unary(f"/test.Edge/{name}")


async def test_echo_with_metadata_and_bin_trailers(served: tuple[NativeGrpcServer, Recorder]) -> None:
    server, rec = served
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        call = _call(channel, "Echo")(b"hello", metadata=(("x-key", "k1"), ("x-blob-bin", b"\x01\x02\xfe")))
        assert await call == b"hello"
        trailing = dict(await call.trailing_metadata())
        assert await call.code() == grpc.StatusCode.OK
    assert trailing["x-size"] == "5" and trailing["x-echo-bin"] == b"\x00\xff\x10"
    assert rec.metadata["x-key"] == "k1" and rec.metadata["x-blob-bin"] == b"\x01\x02\xfe"


async def test_large_messages_both_ways_respect_flow_control(served: tuple[NativeGrpcServer, Recorder]) -> None:
    server, _ = served
    payload = bytes(range(256)) * (3 * 4096 + 7)  # ~3 MiB: many DATA frames and window updates each way
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        assert await _call(channel, "Echo")(payload) == payload
        answers = await asyncio.gather(*[_call(channel, "Big")(str(2 << 20).encode()) for _ in range(4)])
    assert all(len(a) == 2 << 20 and a[:256] == bytes(range(256)) for a in answers)


async def test_many_concurrent_streams_on_one_channel(served: tuple[NativeGrpcServer, Recorder]) -> None:
    server, _ = served
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        echo = _call(channel, "Echo")
        answers = await asyncio.gather(*[echo(str(i).encode() * 50) for i in range(500)])
    assert answers == [str(i).encode() * 50 for i in range(500)]


async def test_request_over_the_limit_is_resource_exhausted_and_the_channel_goes_on(
        served: tuple[NativeGrpcServer, Recorder]) -> None:
    server, _ = served
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _call(channel, "Echo")(b"x" * (5 << 20))
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "over the limit" in refused.value.details()
        assert await _call(channel, "Echo")(b"after") == b"after"


async def test_errors_statuses_and_percent_encoded_messages(served: tuple[NativeGrpcServer, Recorder]) -> None:
    server, _ = served
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await _call(channel, "Fail")("naïve 100% ✓\nline".encode())
        with pytest.raises(grpc.aio.AioRpcError) as crashed:
            await _call(channel, "Crash")(b"")
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await channel.unary_unary("/test.Edge/Nope")(b"")
    assert failed.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert failed.value.details() == "naïve 100% ✓\nline"
    assert crashed.value.code() == grpc.StatusCode.UNKNOWN and "boom" in crashed.value.details()
    assert missing.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert percent_encode("a%b é") == b"a%25b %C3%A9"


async def test_gzip_requests_are_read(served: tuple[NativeGrpcServer, Recorder]) -> None:
    server, _ = served
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}", compression=grpc.Compression.Gzip) as channel:
        assert await _call(channel, "Echo")(b"z" * 100_000) == b"z" * 100_000


async def test_deadline_and_client_cancel_cancel_the_handler(served: tuple[NativeGrpcServer, Recorder]) -> None:
    server, rec = served
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as late:
            await _call(channel, "Slow")(b"5", timeout=0.2)
        assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        await asyncio.wait_for(rec.cancelled.wait(), 2)
        rec.cancelled.clear()
        rec.started.clear()
        call = _call(channel, "Slow")(b"5")
        await asyncio.wait_for(rec.started.wait(), 2)
        call.cancel()
        await asyncio.wait_for(rec.cancelled.wait(), 2)  # RST_STREAM reached the handler
        assert await _call(channel, "Echo")(b"still") == b"still"
    assert parse_timeout("250m") == 0.25 and parse_timeout("1H") == 3600 and parse_timeout("x") is None


async def test_drain_finishes_in_flight_calls_then_refuses_new_connections() -> None:
    rec = Recorder()
    server = NativeGrpcServer([_handlers(rec)], "127.0.0.1", 0, 1 << 20)
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        in_flight = asyncio.ensure_future(_call(channel, "Slow")(b"0.4"))
        await asyncio.wait_for(rec.started.wait(), 2)
        stopping = asyncio.ensure_future(server.stop(5.0))
        assert await in_flight == b"done"
        await asyncio.wait_for(stopping, 3)
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", server.port)


# --- raw HTTP/2 -------------------------------------------------------------------------------

async def test_continuation_padding_priority_and_tiny_data_frames(served: tuple[NativeGrpcServer, Recorder]) -> None:
    server, _ = served
    raw = await Raw.open(server.port)
    block = raw.request_block("/test.Edge/Echo", **{"x-long": "v" * 3000})
    # HEADERS with padding and priority, the block split over two CONTINUATIONs
    first = bytes([4]) + struct.pack(">IB", 0, 15) + block[:10] + b"\x00" * 4
    raw.send(h2.frame(h2.HEADERS, h2.PADDED | h2.PRIORITY_FLAG, 1, first),
             h2.frame(h2.CONTINUATION, 0, 1, block[10:1000]),
             h2.frame(h2.CONTINUATION, h2.END_HEADERS, 1, block[1000:]))
    body = message(b"abcdefghij" * 50)
    for i in range(0, len(body), 7):  # many small DATA frames, every other one padded
        chunk = body[i:i + 7]
        last = h2.END_STREAM if i + 7 >= len(body) else 0
        if i % 14:
            raw.send(h2.frame(h2.DATA, h2.PADDED | last, 1, bytes([3]) + chunk + b"\x00\x00\x00"))
        else:
            raw.send(h2.frame(h2.DATA, last, 1, chunk))
    raw.send(h2.frame(h2.PING, 0, 0, b"12345678"))
    blocks, data = await raw.until_stream_ends(1)
    assert dict(blocks[0])[":status"] == "200" and dict(blocks[-1])["grpc-status"] == "0"
    assert data == body
    raw.close()


async def test_ping_is_acked_and_unknown_frames_are_ignored(served: tuple[NativeGrpcServer, Recorder]) -> None:
    server, _ = served
    raw = await Raw.open(server.port)
    raw.send(h2.frame(0x42, 0, 0, b"whatever"), h2.frame(h2.PING, 0, 0, b"pingpong"))
    while True:
        kind, flags, _, payload = await raw.read()  # type: ignore[misc]
        if kind == h2.PING:
            break
    assert flags & h2.ACK and payload == b"pingpong"
    raw.close()


@pytest.mark.parametrize("bad, code", [
    (h2.frame(h2.HEADERS, h2.END_HEADERS, 2, b"\x82"), h2.PROTOCOL_ERROR),            # even stream id
    (h2.frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, 1, b"\xff\xff\xff\xff"), h2.COMPRESSION_ERROR),  # bad HPACK
    (h2.frame(h2.HEADERS, h2.END_HEADERS, 1, b"\xbf"), h2.COMPRESSION_ERROR),          # index past the tables
    (h2.frame(h2.PING, 0, 0, b"short"), h2.FRAME_SIZE_ERROR),
    (h2.frame(h2.SETTINGS, 0, 0, b"\x00\x04\xff\xff\xff\xff"), h2.FLOW_CONTROL_ERROR),
    (h2.frame(h2.DATA, 0, 7, b"x"), h2.PROTOCOL_ERROR),                                # DATA on an idle stream
    (h2.frame(h2.HEADERS, 0, 1, b"") + h2.frame(h2.PING, 0, 0, b"12345678"), h2.PROTOCOL_ERROR),  # cut block
    (h2.frame(h2.WINDOW_UPDATE, 0, 0, b"\x00\x00\x00\x00"), h2.PROTOCOL_ERROR),
    (h2.frame(h2.DATA, h2.PADDED, 1, b"\x09ab"), h2.PROTOCOL_ERROR),
])
async def test_malformed_frames_close_only_that_connection(served: tuple[NativeGrpcServer, Recorder],
                                                           bad: bytes, code: int) -> None:
    server, _ = served
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        echo = _call(channel, "Echo")
        assert await echo(b"before") == b"before"
        raw = await Raw.open(server.port)
        if bad[3] == h2.DATA and bad[4] & h2.PADDED:  # padding check needs an open stream
            raw.send(h2.frame(h2.HEADERS, h2.END_HEADERS, 1, raw.request_block("/test.Edge/Echo")))
        raw.send(bad)
        got, _ = await raw.until_goaway()
        raw.close()
        assert got == code
        assert await echo(b"after") == b"after"  # the other connection never noticed


async def test_not_grpc_is_refused_with_415(served: tuple[NativeGrpcServer, Recorder]) -> None:
    server, _ = served
    raw = await Raw.open(server.port)
    block = raw.encoder.encode([(":method", "POST"), (":scheme", "http"), (":path", "/test.Edge/Echo"),
                                (":authority", "x"), ("content-type", "application/json")])
    raw.send(h2.frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, 1, block))
    blocks, _ = await raw.until_stream_ends(1)
    assert dict(blocks[0])[":status"] == "415"
    raw.send(h2.frame(h2.HEADERS, h2.END_HEADERS, 3, raw.request_block("/test.Edge/Echo", **{"grpc-timeout": "5S"})),
             h2.frame(h2.DATA, h2.END_STREAM, 3, message(b"ok")))
    blocks, data = await raw.until_stream_ends(3)
    assert data == message(b"ok") and dict(blocks[-1])["grpc-status"] == "0"
    raw.close()


async def test_malformed_requests_reset_only_their_stream(served: tuple[NativeGrpcServer, Recorder]) -> None:
    server, _ = served
    raw = await Raw.open(server.port)
    upper = raw.encoder.encode([(":method", "POST"), (":scheme", "http"), (":path", "/test.Edge/Echo"),
                                (":authority", "x"), ("content-type", "application/grpc"), ("X-Upper", "1")])
    raw.send(h2.frame(h2.HEADERS, h2.END_HEADERS, 1, upper))
    while True:
        kind, _, sid, payload = await raw.read()  # type: ignore[misc]
        if kind == h2.RST_STREAM:
            break
    assert sid == 1 and struct.unpack(">I", payload)[0] == h2.PROTOCOL_ERROR
    get = raw.encoder.encode([(":method", "GET"), (":scheme", "http"), (":path", "/test.Edge/Echo"),
                              (":authority", "x")])
    raw.send(h2.frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, 3, get))
    blocks, _ = await raw.until_stream_ends(3)
    assert dict(blocks[0])[":status"] == "405"
    raw.send(h2.frame(h2.HEADERS, h2.END_HEADERS, 5, raw.request_block("/test.Edge/Echo")),
             h2.frame(h2.DATA, h2.END_STREAM, 5, message(b"fine")))
    _, data = await raw.until_stream_ends(5)
    assert data == message(b"fine")
    raw.close()


async def test_metadata_follows_the_hpack_table_across_requests(served: tuple[NativeGrpcServer, Recorder]) -> None:
    """Repeated blocks are parsed once; a block whose meaning changed with the table is not reused."""
    server, rec = served
    raw = await Raw.open(server.port)
    seen = []
    for stream_id, key in zip(range(1, 20, 2), ["a", "a", "b", "a", "b", "b", "c", "a", "a", "c"], strict=True):
        raw.send(h2.frame(h2.HEADERS, h2.END_HEADERS, stream_id,
                          raw.request_block("/test.Edge/Echo", **{"x-key": key, "grpc-timeout": "9S"})),
                 h2.frame(h2.DATA, h2.END_STREAM, stream_id, message(key.encode())))
        _, data = await raw.until_stream_ends(stream_id)
        assert data == message(key.encode())
        seen.append(rec.metadata["x-key"])
    assert seen == ["a", "a", "b", "a", "b", "b", "c", "a", "a", "c"]
    raw.close()


async def test_a_connection_holding_too_many_unfinished_bytes_refuses_the_stream_over_it() -> None:
    rec = Recorder()
    limits = h2.Limits(1 << 20, connection_buffer=1 << 20)
    server = NativeGrpcServer([_handlers(rec)], "127.0.0.1", 0, 1 << 20, limits=limits)
    await server.start()
    raw = await Raw.open(server.port)
    chunk = b"x" * 600_000
    raw.send(h2.frame(h2.HEADERS, h2.END_HEADERS, 1, raw.request_block("/test.Edge/Echo")),
             h2.frame(h2.DATA, 0, 1, struct.pack(">BI", 0, 900_000) + chunk[:500_000]),
             h2.frame(h2.HEADERS, h2.END_HEADERS, 3, raw.request_block("/test.Edge/Echo")),
             h2.frame(h2.DATA, 0, 3, struct.pack(">BI", 0, 900_000) + chunk))
    blocks, _ = await raw.until_stream_ends(3)
    assert dict(blocks[-1])["grpc-status"] == str(grpc.StatusCode.RESOURCE_EXHAUSTED.value[0])
    raw.send(h2.frame(h2.DATA, h2.END_STREAM, 1, chunk[:400_000]),  # the first one still completes
             h2.frame(h2.WINDOW_UPDATE, 0, 0, struct.pack(">I", 1 << 20)),  # once we let the answer through
             h2.frame(h2.WINDOW_UPDATE, 0, 1, struct.pack(">I", 1 << 20)))
    _, data = await raw.until_stream_ends(1)
    assert len(data) == 900_005
    raw.close()
    await server.stop(1.0)


async def test_two_servers_share_a_port_like_worker_processes() -> None:
    rec = Recorder()
    first = NativeGrpcServer([_handlers(rec)], "127.0.0.1", 0, 1 << 20)
    await first.start()
    second = NativeGrpcServer([_handlers(rec)], "127.0.0.1", first.port, 1 << 20)
    await second.start()  # SO_REUSEPORT, as the gateway's worker processes bind it
    async with grpc.aio.insecure_channel(f"127.0.0.1:{first.port}") as channel:
        assert await _call(channel, "Echo")(b"x") == b"x"
    await first.stop(1.0)
    await second.stop(1.0)


async def test_answers_wait_for_the_clients_windows(served: tuple[NativeGrpcServer, Recorder]) -> None:
    server, _ = served
    raw = await Raw.open(server.port)
    raw.send(h2.frame(h2.SETTINGS, 0, 0, struct.pack(">HI", h2.S_INITIAL_WINDOW_SIZE, 1000)),
             h2.frame(h2.HEADERS, h2.END_HEADERS, 1, raw.request_block("/test.Edge/Big")),
             h2.frame(h2.DATA, h2.END_STREAM, 1, message(b"5120")))
    received = 0
    while received < 1000:
        kind, _, sid, payload = await raw.read()  # type: ignore[misc]
        if kind == h2.DATA:
            received += len(payload)
    assert received == 1000  # the stream's window, not a byte more
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(raw.reader.readexactly(1), 0.2)
    raw.send(h2.frame(h2.WINDOW_UPDATE, 0, 1, struct.pack(">I", 10_000)))
    _, data = await raw.until_stream_ends(1)
    assert received + len(data) == 5120 + 5
    raw.close()


async def test_a_preface_without_settings_first_is_a_protocol_error(served: tuple[NativeGrpcServer, Recorder]) -> None:
    server, _ = served
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    raw = Raw(reader, writer)
    writer.write(h2.PREFACE + h2.frame(h2.PING, 0, 0, b"12345678"))
    code, _ = await raw.until_goaway()
    assert code == h2.PROTOCOL_ERROR
    raw.close()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # not HTTP/2 at all
    code, _ = await Raw(reader, writer).until_goaway()
    assert code == h2.PROTOCOL_ERROR
    writer.close()


async def test_client_streams_run_as_messages_arrive_and_a_refusing_stream_answers_at_once(
        served: tuple[NativeGrpcServer, Recorder]) -> None:
    server, rec = served
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        call = channel.stream_unary("/test.Edge/Total")()
        await call.write(b"2")
        await asyncio.wait_for(rec.started.wait(), 2)  # the handler has the first message before the end
        await call.write(b"40")
        await call.done_writing()
        assert await call == b"42"
        stream = channel.stream_stream("/test.Edge/Refuse")()  # never half-closed by the client
        with pytest.raises(grpc.aio.AioRpcError):
            await stream.write(b"first")
            await asyncio.wait_for(stream.read(), 2)
        assert await asyncio.wait_for(stream.code(), 2) == grpc.StatusCode.PERMISSION_DENIED
        assert await _call(channel, "Echo")(b"ok") == b"ok"


async def test_rapid_reset_is_cut_off(served: tuple[NativeGrpcServer, Recorder]) -> None:
    server, _ = served
    raw = await Raw.open(server.port)
    frames = []
    for stream_id in range(1, 2 * 1100, 2):  # each call opened (and started) then reset at once
        frames.append(h2.frame(h2.HEADERS, h2.END_HEADERS, stream_id, raw.request_block("/test.Edge/Slow")))
        frames.append(h2.frame(h2.DATA, h2.END_STREAM, stream_id, message(b"5")))
        frames.append(h2.frame(h2.RST_STREAM, 0, stream_id, struct.pack(">I", h2.CANCEL)))
    raw.send(*frames)
    code, _ = await raw.until_goaway()
    assert code == h2.ENHANCE_YOUR_CALM
    raw.close()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        assert await _call(channel, "Echo")(b"fine") == b"fine"
