"""Triton's inference data plane over HTTP/1.1: V2 REST with the binary tensor extension.

Why not gRPC for the hot path: on this kind of machine a grpc.aio client call costs
about 0.3 ms of CPU (its completion-queue poller thread, a task and several
callbacks per call) while a request over a kept-alive HTTP/1.1 connection, written
and parsed here on the event loop, costs a few tens of microseconds and answers
sooner. The gRPC channel stays for the control calls (load, unload, ready,
metadata), which are rare.

Inputs always travel as binary tensor data (typed ``contents`` are packed to raw
bytes first) and every output is asked for as binary, so the answer maps one to one
onto ``ModelInferResponse.raw_output_contents`` (the codec: ``triton_v2_codec``). Errors follow the same taxonomy
as the gRPC adapter: HTTP 400 (Triton refused the request as malformed) is
``InvalidArgument``; anything else (404 model not loaded, 5xx, connection lost,
deadline) is ``Unavailable``, which the gateway answers with a fallback.

Connections are kept in a LIFO pool (one request at a time on each, no
pipelining). A connection whose request is cancelled, timed out or failed is closed,
never reused. A request that finds a reused connection closed by Triton before any
byte of the answer came back is sent once more on a fresh connection.

Deadlines: each connection with a request in flight carries the loop time its answer
is due by, and one timer for the whole pool fires at the soonest of them. Under load
that timer fires about once per timeout; ``asyncio.timeout`` around every call cost
a timer armed and cancelled per request (about 10 µs with uvloop, a few
``getpid`` calls among them on Python 3.11).
"""

from __future__ import annotations

import asyncio
import math
import socket
from collections.abc import Sequence

from tritonclient.grpc import service_pb2 as pb

from loopline_core.errors import InvalidArgument, Unavailable
from loopline_core.servers.host import Component

from loopline_serving_gateway.adapters.triton_v2_codec import decode_response, encode_request, error_text

_MAX_HEAD = 64 << 10
_MAX_IDLE = 64


class _Refused(Exception):
    """The connection broke before any byte of the answer arrived."""


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection to Triton; parses exactly one response per request."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.deadline = math.inf  # loop time by which the answer in flight is due
        self._buffer = bytearray()
        self._waiter: asyncio.Future[tuple[int, dict[bytes, bytes], bytes]] | None = None
        self._head: tuple[int, dict[bytes, bytes], int] | None = None
        self._received = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            what = "the connection to Triton was closed"
            waiter.set_exception(ConnectionError(what) if self._received else _Refused(what))

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def request(self, parts: Sequence[bytes]) -> asyncio.Future[tuple[int, dict[bytes, bytes], bytes]]:
        assert self.transport is not None
        waiter = self.loop.create_future()
        self._waiter = waiter
        self._received = False
        self.transport.write(b"".join(parts))  # one write, one syscall (writelines costs more here)
        return waiter

    def expire(self) -> None:
        """The answer in flight is past its deadline: its caller gets ``TimeoutError`` (and closes this)."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(TimeoutError())

    def data_received(self, data: bytes) -> None:
        self._received = True
        self._buffer += data
        waiter = self._waiter
        if waiter is None or waiter.done():
            self.close()  # bytes nobody asked for: the stream is out of step
            return
        try:
            answer = self._parse()
        except ValueError as exc:
            waiter.set_exception(ConnectionError(f"Triton sent a malformed HTTP response: {exc}"))
            self.close()
            return
        if answer is not None:
            self._waiter = None
            waiter.set_result(answer)

    def _parse(self) -> tuple[int, dict[bytes, bytes], bytes] | None:
        buffer = self._buffer
        if self._head is None:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > _MAX_HEAD:
                    raise ValueError("header block too long")
                return None
            lines = bytes(buffer[:end]).split(b"\r\n")
            version, _, rest = lines[0].partition(b" ")
            if not version.startswith(b"HTTP/1."):
                raise ValueError(f"status line {lines[0][:80]!r}")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
            if version == b"HTTP/1.0":
                headers.setdefault(b"connection", b"close")
            self._head = (int(rest[:3]), headers, end + 4)
        status, headers, start = self._head
        length = headers.get(b"content-length")
        if length is not None:
            end = start + int(length)
            if len(buffer) < end:
                return None
            body = bytes(buffer[start:end])
        elif headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            parsed = _dechunk(buffer, start)
            if parsed is None:
                return None
            body, end = parsed
        else:
            raise ValueError("response has neither content-length nor chunked encoding")
        del buffer[:end]
        self._head = None
        return status, headers, body


def _dechunk(buffer: bytearray, at: int) -> tuple[bytes, int] | None:
    parts = []
    while True:
        line_end = buffer.find(b"\r\n", at)
        if line_end < 0:
            return None
        size = int(bytes(buffer[at:line_end]).split(b";")[0], 16)
        at = line_end + 2
        if size == 0:
            trailer_end = buffer.find(b"\r\n", at)  # no trailers expected: just the closing CRLF
            if trailer_end < 0:
                return None
            return b"".join(parts), trailer_end + 2
        if len(buffer) < at + size + 2:
            return None
        parts.append(bytes(buffer[at:at + size]))
        at += size + 2


class TritonHttp:
    """Implements the gateway's Triton inference port over V2 HTTP/1.1."""

    def __init__(self, url: str, max_idle: int = _MAX_IDLE) -> None:
        address = url.removeprefix("http://").rstrip("/")
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise InvalidArgument(f"Triton HTTP address {url!r} is not host:port", field="triton.http_url")
        self.url = address
        self._host, self._port = host.strip("[]"), int(port)
        self._host_header = f"Host: {address}\r\n"
        self._idle: list[_Connection] = []
        self._max_idle = max_idle
        self._busy: set[_Connection] = set()  # a request in flight on each
        self._alarm: asyncio.TimerHandle | None = None
        self._alarm_at = math.inf

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, connection = await loop.create_connection(_Connection, self._host, self._port)
        except OSError as exc:
            raise Unavailable(f"Triton at {self.url} is not reachable: {exc}") from exc
        return connection

    async def _exchange(self, parts: list[bytes], timeout_s: float) -> tuple[int, dict[bytes, bytes], bytes]:
        deadline = math.nan
        while self._idle:
            connection = self._idle.pop()
            if connection.closed or connection.transport is None or connection.transport.is_closing():
                continue
            if deadline != deadline:  # nan: the first try sets the deadline of all of them
                deadline = connection.loop.time() + timeout_s
            waiter = self._ask(connection, parts, deadline)
            try:
                answer = await waiter
            except _Refused:
                self._busy.discard(connection)
                connection.close()
                continue  # Triton closed the idle connection under us: try another
            except BaseException:
                self._busy.discard(connection)
                connection.close()
                raise
            self._busy.discard(connection)
            self._release(connection, answer[1])
            return answer
        if deadline != deadline:
            deadline = asyncio.get_running_loop().time() + timeout_s
        async with asyncio.timeout_at(deadline):  # connecting is rare: a timer of its own
            connection = await self._connect()
        try:
            answer = await self._ask(connection, parts, deadline)
        except BaseException:
            connection.close()
            raise
        finally:
            self._busy.discard(connection)
        self._release(connection, answer[1])
        return answer

    def _ask(self, connection: _Connection, parts: list[bytes],
             deadline: float) -> asyncio.Future[tuple[int, dict[bytes, bytes], bytes]]:
        """Sends the request, and watches its deadline with the pool's one timer."""
        waiter = connection.request(parts)
        connection.deadline = deadline
        self._busy.add(connection)
        if deadline < self._alarm_at:
            if self._alarm is not None:
                self._alarm.cancel()
            self._alarm_at = deadline
            self._alarm = connection.loop.call_at(deadline, self._expire, connection.loop)
        return waiter

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        """The pool's timer: fails the requests past their deadline, then waits for the next one due."""
        self._alarm, self._alarm_at = None, math.inf
        now = loop.time()
        soonest = math.inf
        for connection in list(self._busy):
            if connection.deadline <= now:
                self._busy.discard(connection)
                connection.expire()
            elif connection.deadline < soonest:
                soonest = connection.deadline
        if soonest < math.inf:
            self._alarm_at = soonest
            self._alarm = loop.call_at(soonest, self._expire, loop)

    def _release(self, connection: _Connection, headers: dict[bytes, bytes]) -> None:
        if headers.get(b"connection", b"").lower() == b"close" or len(self._idle) >= self._max_idle:
            connection.close()
        elif not connection.closed:
            self._idle.append(connection)

    async def infer(self, request: pb.ModelInferRequest, timeout_s: float,
                    metadata: Sequence[tuple[str, str]] | None = None) -> pb.ModelInferResponse:
        path, header, tail = encode_request(request)
        size = len(header) + sum(len(t) for t in tail)
        extra = "".join(f"{k}: {v}\r\n" for k, v in metadata if "\r" not in v and "\n" not in v) if metadata else ""
        head = (f"POST {path} HTTP/1.1\r\n{self._host_header}Content-Type: application/octet-stream\r\n"
                f"Inference-Header-Content-Length: {len(header)}\r\nContent-Length: {size}\r\n{extra}\r\n").encode()
        what = f"inference on {request.model_name}"
        try:
            status, headers, body = await self._exchange([head, header, *tail], timeout_s)
        except TimeoutError:
            raise Unavailable(f"Triton failed {what}: DEADLINE_EXCEEDED after {timeout_s:g} s") from None
        except (ConnectionError, _Refused) as exc:
            raise Unavailable(f"Triton failed {what}: {exc}") from exc
        if status != 200:
            if status == 400:
                raise InvalidArgument(f"Triton refused {what}: {error_text(body)}")
            raise Unavailable(f"Triton failed {what}: HTTP {status}: {error_text(body)}")
        length = headers.get(b"inference-header-content-length")
        try:
            return decode_response(body, int(length) if length is not None else None)
        except (ValueError, KeyError, TypeError) as exc:
            raise Unavailable(f"Triton sent an answer to {what} that does not parse: {exc}") from exc

    async def start(self) -> None:
        """Open the first connection (Triton's HTTP port must be reachable) and keep it in the pool."""
        connection = await self._connect()
        self._idle.append(connection)

    def component(self) -> Component:
        return Component("triton-http", self.start, self.stop)

    async def stop(self) -> None:
        if self._alarm is not None:
            self._alarm.cancel()
            self._alarm, self._alarm_at = None, math.inf
        while self._idle:
            self._idle.pop().close()
