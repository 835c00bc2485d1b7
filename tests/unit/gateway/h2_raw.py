"""A small raw HTTP/2 client for the native edge's tests (test_gateway_h2_*.py, test_gateway_tls.py): frames built with
h2_wire's ``frame``, header blocks with the ``hpack`` package, frames read one by one (and
recorded), and the waits the tests need (a stream's answer, a GOAWAY, a RST_STREAM, a PING
round trip)."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import hpack

from loopline_serving_gateway.entrypoints import h2_wire as wire

MAX = (1 << 31) - 1

Frame = tuple[int, int, int, bytes]  # type, flags, stream id, payload


async def gone(server: Any, connection: Any, within: float = 3.0) -> None:
    """The connection left the native server and holds no stream, byte or queued answer."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while connection in server.connections and loop.time() < deadline:
        await asyncio.sleep(0.01)
    assert connection not in server.connections
    assert connection._streams == {} and connection._blocked == []
    assert connection._held == 0
    transport = connection._transport
    assert transport is not None and transport.get_write_buffer_size() == 0


def u32(value: int) -> bytes:
    return struct.pack(">I", value)


def message(body: bytes) -> bytes:
    """A gRPC length-prefixed message (uncompressed)."""
    return struct.pack(">BI", 0, len(body)) + body


class Raw:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.frames: list[Frame] = []

    @classmethod
    async def open(cls, port: int, settings: bytes = b"") -> Raw:
        """Connect and send the preface and our SETTINGS (``settings``: their payload)."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        raw = cls(reader, writer)
        writer.write(wire.PREFACE + wire.frame(wire.SETTINGS, 0, 0, settings))
        return raw

    def send(self, *frames: bytes) -> None:
        self.writer.write(b"".join(frames))

    def block(self, path: str = "/test.Edge/Echo", *extra: tuple[str, str], base: bool = True) -> bytes:
        """A request header block (``base``: with the pseudo-headers and gRPC headers first)."""
        headers = [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "x"),
                   ("content-type", "application/grpc"), ("te", "trailers")] if base else []
        return self.encoder.encode([*headers, *extra])

    def request_block(self, path: str, **extra: str) -> bytes:
        return self.block(path, *extra.items())

    def call(self, stream_id: int, body: bytes = b"hi", path: str = "/test.Edge/Echo") -> bytes:
        """A whole unary call: HEADERS, then one DATA frame with END_STREAM."""
        return (wire.frame(wire.HEADERS, wire.END_HEADERS, stream_id, self.block(path))
                + wire.frame(wire.DATA, wire.END_STREAM, stream_id, message(body)))

    async def read(self, timeout: float = 3.0) -> Frame | None:
        """The next frame; None when the connection closed (TimeoutError after ``timeout``)."""
        try:
            head = await asyncio.wait_for(self.reader.readexactly(9), timeout)
            payload = await asyncio.wait_for(self.reader.readexactly(int.from_bytes(head[:3], "big")), timeout)
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        got = head[3], head[4], int.from_bytes(head[5:9], "big") & MAX, payload
        self.frames.append(got)
        return got

    async def until(self, kind: int, stream_id: int | None = None) -> Frame:
        while True:
            got = await self.read()
            assert got is not None, f"the connection closed before a frame of type {kind}"
            if got[0] == kind and (stream_id is None or got[2] == stream_id):
                return got

    async def goaway(self) -> int:
        """The GOAWAY error code; the server then closes the connection."""
        payload = (await self.until(wire.GOAWAY))[3]
        while await self.read() is not None:
            pass
        return int.from_bytes(payload[4:8], "big")

    async def until_goaway(self) -> tuple[int, bytes]:
        """The GOAWAY's error code and debug data; then the server closes the connection."""
        while True:
            got = await self.read()
            assert got is not None, "closed without GOAWAY"
            if got[0] == wire.GOAWAY:
                code = struct.unpack(">II", got[3][:8])[1]
                rest = await self.reader.read()  # then the server closes
                assert rest == b"" or rest is not None
                return code, got[3][8:]

    async def reset_code(self, stream_id: int) -> int:
        return int.from_bytes((await self.until(wire.RST_STREAM, stream_id))[3], "big")

    async def answer(self, stream_id: int) -> tuple[dict[str, str], bytes]:
        """The merged headers and trailers of a stream's answer, and its DATA."""
        blocks, data = await self.until_stream_ends(stream_id)
        headers: dict[str, str] = {}
        for block in blocks:
            headers.update(block)
        return headers, data

    async def until_stream_ends(self, stream_id: int) -> tuple[list[list[tuple[str, str]]], bytes]:
        """Each header block of a stream's answer (headers, trailers) and its DATA; a reset
        of the stream fails the test at once."""
        blocks, data = [], b""
        while True:
            got = await self.read()
            assert got is not None, "the connection closed"
            kind, flags, sid, payload = got
            if sid != stream_id:
                continue
            if kind == wire.HEADERS:
                blocks.append(self.decoder.decode(payload))
            elif kind == wire.DATA:
                data += payload
            elif kind == wire.RST_STREAM:
                raise AssertionError(f"stream {stream_id} reset with {int.from_bytes(payload, 'big')}")
            if flags & wire.END_STREAM and kind in (wire.HEADERS, wire.DATA):
                return blocks, data

    async def sync(self, token: bytes = b"syncsync", timeout: float = 3.0) -> bool | None:
        """Send a PING and read up to its ACK: every frame sent before it has been processed.
        False when the connection closed first, None when nothing came back in ``timeout``."""
        self.send(wire.frame(wire.PING, 0, 0, token))
        while True:
            try:
                got = await self.read(timeout)
            except TimeoutError:
                return None
            if got is None:
                return False
            if got[0] == wire.PING and got[1] & wire.ACK and got[3] == token:
                return True

    def close(self) -> None:
        self.writer.close()
