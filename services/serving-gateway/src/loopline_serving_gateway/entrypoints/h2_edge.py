"""A lean gRPC server on asyncio: HTTP/2 (RFC 9113) framing, HPACK from the ``hpack`` package.

Why: grpcio's own server costs more CPU per unary call than the gateway's whole budget
(its C core, poller thread and the grpc.aio bridge). This edge parses frames in one
asyncio Protocol per connection and answers each call with one write.

It serves the same ``grpc.GenericRpcHandler`` objects as a grpc.aio server (the method
handlers made by ``grpc.method_handlers_generic_handler``), with a small ServicerContext
(``invocation_metadata``, ``abort``, ``set_code``/``set_details``, ``set_trailing_metadata``,
``time_remaining``, ``peer``, ``cancelled``). Handlers are looked up by :path only and the
answer is cached per path, so handlers must not route on metadata.

HTTP/2: the preface, SETTINGS (ours: max concurrent streams, stream window, max frame
size, header list size; the client's are applied and ACKed), PING ACK, flow control in both
directions (we honour the client's connection and stream windows when sending, and give
back what we consumed), HEADERS + CONTINUATION, padding and priority, RST_STREAM (cancels
the call), GOAWAY (on drain: in-flight calls finish, new streams are refused; on protocol
errors: GOAWAY with the error code, then the connection closes; other connections go on).
Server push is never used, trailers are always sent, responses are never compressed.

gRPC: content-type check (HTTP 415 otherwise), ``grpc-timeout`` deadlines
(DEADLINE_EXCEEDED), ``-bin`` metadata (base64), ``grpc-encoding: gzip`` requests (other
codings: UNIMPLEMENTED), the request size limit enforced while receiving
(RESOURCE_EXHAUSTED), status and percent-encoded ``grpc-message`` in the trailers,
trailers-only answers for errors.

Connection limits (``Limits``): handshake, idle and write-stall timeouts, checked by one
sweep per server (``NativeGrpcServer._sweep`` -> ``H2Connection.check``) that compares
counters the frames bump, so nothing is re-armed per frame; a flood budget for frames that
make no progress (PING, SETTINGS, WINDOW_UPDATE, empty frames, ...) that grows with the
streams opened; rapid-reset and "MadeYouReset" cut-offs; bounded request bytes per connection.

TLS (``NativeGrpcServer(tls=...)``, a server-side ``ssl.SSLContext`` that offers ALPN ``h2``):
asyncio's (or uvloop's) TLS transport under the same Protocol, so every limit above holds as in
plaintext; a client that does not finish the TLS handshake within ``handshake_timeout_s`` is
closed (``ssl_handshake_timeout``), then the HTTP/2 preface gets its own ``handshake_timeout_s``.
A client that negotiates no ALPN protocol is served if it speaks HTTP/2 and otherwise refused
like any bad preface (GOAWAY(PROTOCOL_ERROR), then closed). Without ``tls`` nothing changes.

Not here (the grpc.aio edge has them): server-initiated keepalive pings and grpc's client
ping-rate policy, BDP-probing window growth (our windows are fixed and large).

Frame and gRPC wire constants and the encoders of our header blocks are in ``h2_wire``; the
request head, the handler's context and the ``Limits`` in ``h2_call``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import zlib
from collections.abc import Sequence
from typing import Any

import grpc
from hpack import Decoder, HPACKError, OversizedHeaderListError
from hpack.table import HeaderTable

from loopline_serving_gateway.entrypoints.h2_call import (
    Aborted, CallDetails, Limits, RequestHead, ServicerContext,
)
from loopline_serving_gateway.entrypoints.h2_wire import (
    ACK, CANCEL, COMPRESSION_ERROR, CONTINUATION, DATA, DEFAULT_FRAME, DEFAULT_WINDOW, END_HEADERS, END_STREAM,
    ENHANCE_YOUR_CALM, FLOW_CONTROL_ERROR, FRAME_SIZE_ERROR, GOAWAY, GOAWAY_BODY, HEAD, HEADERS,
    INTERNAL_ERROR, MAX_WINDOW, MSG, NO_ERROR, OK_TRAILER, PADDED, PING, PREFACE, PRIORITY, PRIORITY_FLAG,
    PROTOCOL_ERROR, PUSH_PROMISE, REFUSED_STREAM, RESPONSE_HEAD, RST_STREAM, SETTING,
    SETTINGS, STREAM_CLOSED, S_ENABLE_PUSH, S_INITIAL_WINDOW_SIZE,
    S_MAX_CONCURRENT_STREAMS, S_MAX_FRAME_SIZE, S_MAX_HEADER_LIST_SIZE, U32, WINDOW_UPDATE, frame, hpack_int,
    literal, metadata_block, parse_timeout, percent_encode, status_block,
)

log = logging.getLogger(__name__)

#: After a connection error (GOAWAY sent, our side shut down) the client's input is read and dropped
#: for up to 2 s, so that it reads our GOAWAY instead of a TCP reset; past this many bytes we stop.
_LINGER_BYTES = 1 << 20


class _CountingTable(HeaderTable):
    """A dynamic table that counts its changes, so decoded blocks can be reused while it stands still."""

    def __init__(self) -> None:
        super().__init__()
        self.generation = 0

    def add(self, name: bytes, value: bytes) -> None:
        self.generation += 1
        super().add(name, value)

    @HeaderTable.maxsize.setter  # type: ignore[attr-defined,untyped-decorator]
    def maxsize(self, newmax: int) -> None:
        self.generation += 1
        HeaderTable.maxsize.fset(self, newmax)  # type: ignore[attr-defined]


class _ConnectionError(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class _Stream:
    __slots__ = ("id", "path", "metadata", "deadline", "encoding", "body", "recv_window", "unacked",
                 "send_window", "pending", "task", "timer", "half_closed", "closed", "refused", "context", "inbox",
                 "handler", "scanned")

    def __init__(self, stream_id: int, send_window: int, recv_window: int) -> None:
        self.id = stream_id
        self.path = ""
        self.scanned = 0  # where in body the next message prefix not yet checked by _too_large starts
        self.metadata: tuple[tuple[str, str | bytes], ...] = ()
        self.deadline: float | None = None
        self.encoding = ""
        self.body = bytearray()
        self.recv_window = recv_window
        self.unacked = 0
        self.send_window = send_window
        self.pending: list[bytes] | None = None  # [data payload, trailers block] waiting for window
        self.task: asyncio.Task[None] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.half_closed = False  # the client has sent END_STREAM
        self.closed = False       # we have answered (or reset) it
        self.refused = False      # answered early (size limit, bad headers); DATA still arriving is dropped
        self.context: ServicerContext | None = None
        self.inbox: asyncio.Queue[bytes | None] | None = None  # client-streaming calls only
        self.handler: grpc.RpcMethodHandler | None = None


class H2Connection(asyncio.Protocol):
    """One client connection: frames in, unary (and half-closed streaming) gRPC calls out."""

    # Slots: attribute access stays a fixed-offset load however many there are (an instance dict
    # stops sharing its keys past 30 attributes on CPython 3.11, and every lookup gets slower).
    __slots__ = ("_server", "_limits", "_loop", "_transport", "_buffer", "_preface", "_decoder", "_table",
                 "_decoded", "_streams", "_last_stream", "_continuing", "_peer_window", "_peer_stream_window",
                 "_peer_frame", "_recv_unacked", "_recv_window", "_settings_seen", "_handshake_timer", "_resets",
                 "_answered", "_held", "_blocked", "_goaway_sent", "_closing", "_dropped", "_peer", "_reads",
                 "_reads_seen", "_idle_since", "_write_paused", "_handed", "_stall_taken", "_stall_since", "_owed",
                 "_cheap", "_cheap_limit", "_flood_start", "_opened", "_flood_opened", "_pieces", "_flood_pieces",
                 "_incomplete")

    def __init__(self, server: NativeGrpcServer) -> None:
        self._server = server
        self._limits = server.limits
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._preface = False
        self._decoder = Decoder(max_header_list_size=self._limits.max_header_list_size)
        self._table = _CountingTable()
        self._decoder.header_table = self._table
        self._decoded: dict[bytes, tuple[int, RequestHead]] = {}
        self._streams: dict[int, _Stream] = {}
        self._last_stream = 0
        self._continuing: tuple[int, int, bytearray] | None = None  # stream, flags, block so far
        self._peer_window = DEFAULT_WINDOW  # connection send window
        self._peer_stream_window = DEFAULT_WINDOW
        self._peer_frame = DEFAULT_FRAME
        self._recv_unacked = 0
        self._recv_window = server.limits.connection_window  # what the client may still send us
        self._settings_seen = False
        self._handshake_timer: asyncio.TimerHandle | None = None
        self._resets = 0     # open streams the client reset
        self._answered = 0   # streams we answered
        self._held = 0  # request bytes received and not yet handed to a handler
        self._blocked: list[_Stream] = []
        self._goaway_sent = False
        self._closing = False
        self._dropped = 0  # bytes read and dropped after we started closing
        self._peer = "unknown"
        # Timeouts, checked by the server's sweep (``check``), never re-armed per frame:
        self._reads = 0  # reads that completed at least one frame (activity for the idle timeout)
        self._reads_seen = 0
        self._idle_since: float | None = None
        self._write_paused = False  # our write buffer is over its high water mark
        self._handed = 0  # bytes handed to the transport (what the client took: this less its buffer)
        self._stall_taken = 0  # what the client had taken when the current stall window began
        self._stall_since: float | None = None
        self._owed = 0  # PING / SETTINGS ACKs written while the write buffer was over high water
        # Flood budget: frames that make no progress, counted per window of a second.
        self._cheap = 0
        self._cheap_limit = self._limits.flood_frames_per_s
        self._flood_start = self._loop.time()
        self._opened = 0  # streams opened (requests that reached a stream of their own)
        self._flood_opened = 0
        self._pieces = 0  # DATA frames sent in pieces as the client opened its windows
        self._flood_pieces = 0
        self._incomplete: dict[int, float] = {}  # stream id -> when the sweep first saw its request unfinished

    # --- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        address = transport.get_extra_info("peername")
        if isinstance(address, tuple) and len(address) >= 2:
            host = str(address[0])
            self._peer = f"ipv4:{host}:{address[1]}" if "." in host else f"ipv6:[{host}]:{address[1]}"
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        limits = self._limits
        settings = b"".join(SETTING.pack(key, value) for key, value in (
            (S_ENABLE_PUSH, 0),
            (S_MAX_CONCURRENT_STREAMS, limits.max_concurrent_streams),
            (S_INITIAL_WINDOW_SIZE, limits.stream_window),
            (S_MAX_FRAME_SIZE, limits.max_frame_size),
            (S_MAX_HEADER_LIST_SIZE, limits.max_header_list_size),
        ))
        out = frame(SETTINGS, 0, 0, settings)
        if limits.connection_window > DEFAULT_WINDOW:
            out += frame(WINDOW_UPDATE, 0, 0, U32.pack(limits.connection_window - DEFAULT_WINDOW))
        self._handed = len(out)
        transport.write(out)
        self._handshake_timer = self._loop.call_later(
            limits.handshake_timeout_s, self._handshake_expired)
        self._server.connections.add(self)
        if self._server.draining:
            self.goaway(NO_ERROR, "the server is shutting down")

    def _handshake_expired(self) -> None:
        self._handshake_timer = None
        if not self._settings_seen and not self._closing:
            self._fail(PROTOCOL_ERROR, "no HTTP/2 client preface and SETTINGS within "
                                       f"{self._limits.handshake_timeout_s:g} s")

    def connection_lost(self, exc: Exception | None) -> None:
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None
        self._closing = True
        self._server.connections.discard(self)
        for stream in self._streams.values():
            self._cancel(stream)
        self._streams.clear()
        self._server.connection_done(self)

    def data_received(self, data: bytes) -> None:
        if self._closing:
            # Dropped; a client that keeps sending well past our GOAWAY is not read any more
            # (its socket is aborted when the linger ends): it cannot keep us busy meanwhile.
            self._dropped += len(data)
            if self._dropped > _LINGER_BYTES and self._dropped - len(data) <= _LINGER_BYTES:
                transport = self._transport
                if transport is not None and not transport.is_closing():
                    transport.pause_reading()
            return
        buffer = self._buffer
        buffer += data
        if not self._preface:
            if len(buffer) < len(PREFACE):
                if not PREFACE.startswith(bytes(buffer)):
                    self._fail(PROTOCOL_ERROR, "not an HTTP/2 connection preface")
                return
            if not buffer.startswith(PREFACE):
                self._fail(PROTOCOL_ERROR, "not an HTTP/2 connection preface")
                return
            del buffer[:len(PREFACE)]
            self._preface = True
        offset = 0
        size = len(buffer)
        max_frame = self._limits.max_frame_size
        try:
            while size - offset >= 9 and not self._closing:
                high, low, kind, flags, stream_id = HEAD.unpack_from(buffer, offset)
                length = (high << 8) | low
                if length > max_frame:
                    raise _ConnectionError(FRAME_SIZE_ERROR, f"a frame of {length} bytes exceeds {max_frame}")
                end = offset + 9 + length
                if end > size:
                    break
                payload = bytes(buffer[offset + 9:end])
                offset = end
                if not self._settings_seen:
                    if kind != SETTINGS or flags & ACK:
                        raise _ConnectionError(PROTOCOL_ERROR, "the client preface must start with SETTINGS")
                    self._settings_seen = True
                    if self._handshake_timer is not None:
                        self._handshake_timer.cancel()
                        self._handshake_timer = None
                self._frame(kind, flags, stream_id & MAX_WINDOW, payload)
        except _ConnectionError as exc:
            self._fail(exc.code, exc.reason)
            return
        except Exception:  # a bug of ours must not take the process down: this connection only
            log.exception("the HTTP/2 connection from %s failed", self._peer)
            self._fail(INTERNAL_ERROR, "internal error")
            return
        if offset:
            del buffer[:offset]
            self._reads += 1
        if self._recv_unacked >= self._limits.connection_window // 2:
            self._write(frame(WINDOW_UPDATE, 0, 0, U32.pack(self._recv_unacked)))
            self._recv_window += self._recv_unacked
            self._recv_unacked = 0

    def eof_received(self) -> bool | None:
        return None

    def pause_writing(self) -> None:
        # A client that does not read its answers, PING or SETTINGS ACKs (however large the windows
        # it advertised) is not read either until it catches up: what we queue for it stays bounded
        # (and if it never catches up, the write-stall timeout closes the connection).
        self._write_paused = True
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.pause_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._owed = 0
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.resume_reading()

    # --- frames -------------------------------------------------------------------------

    def _frame(self, kind: int, flags: int, stream_id: int, payload: bytes) -> None:
        if self._continuing is not None and kind != CONTINUATION:
            raise _ConnectionError(PROTOCOL_ERROR, "a header block was interrupted by another frame")
        if kind == DATA:
            self._data(flags, stream_id, payload)
        elif kind == HEADERS:
            self._headers(flags, stream_id, payload)
        elif kind == CONTINUATION:
            if self._continuing is None or self._continuing[0] != stream_id:
                raise _ConnectionError(PROTOCOL_ERROR, "CONTINUATION without a header block in progress")
            if not payload:
                self._cheap_frame()
            self._continuing[2].extend(payload)
            if len(self._continuing[2]) > 4 * self._limits.max_header_list_size + 1024:
                raise _ConnectionError(ENHANCE_YOUR_CALM, "the header block is too large")
            if flags & END_HEADERS:
                sid, first_flags, block = self._continuing
                self._continuing = None
                self._header_block(sid, first_flags, bytes(block))
        elif kind == WINDOW_UPDATE:
            self._cheap += 1  # inline: grpcio clients send many (the flood budget's usual frame)
            if self._cheap > self._cheap_limit:
                self._flooded()
            self._window_update(stream_id, payload)
        elif kind == PING:
            self._cheap += 1
            if self._cheap > self._cheap_limit:
                self._flooded()
            if stream_id:
                raise _ConnectionError(PROTOCOL_ERROR, "PING on a stream")
            if len(payload) != 8:
                raise _ConnectionError(FRAME_SIZE_ERROR, "PING payload is not 8 bytes")
            if not flags & ACK:
                if self._write_paused:
                    self._owe_ack()
                self._write(frame(PING, ACK, 0, payload))
        elif kind == SETTINGS:
            self._cheap_frame()
            self._settings(flags, stream_id, payload)
        elif kind == RST_STREAM:
            if not stream_id:
                raise _ConnectionError(PROTOCOL_ERROR, "RST_STREAM on stream 0")
            if len(payload) != 4:
                raise _ConnectionError(FRAME_SIZE_ERROR, "RST_STREAM payload is not 4 bytes")
            if stream_id > self._last_stream:
                raise _ConnectionError(PROTOCOL_ERROR, "RST_STREAM on an idle stream")
            stream = self._streams.pop(stream_id, None)
            if stream is not None:
                stream.closed = True
                self._cancel(stream)
                # streams opened and reset at once, faster than they complete ("rapid reset")
                self._resets += 1
                if self._resets > 1000 and self._resets > self._answered:
                    raise _ConnectionError(ENHANCE_YOUR_CALM, "too many streams reset by the client")
            else:  # a stream already closed: nothing to cancel
                self._cheap_frame()
        elif kind == PRIORITY:
            self._cheap_frame()
            if not stream_id:
                raise _ConnectionError(PROTOCOL_ERROR, "PRIORITY on stream 0")
            if len(payload) != 5:
                self._reset(stream_id, FRAME_SIZE_ERROR)
        elif kind == GOAWAY:
            self._cheap_frame()
            if stream_id:
                raise _ConnectionError(PROTOCOL_ERROR, "GOAWAY on a stream")
            self._server.peer_went_away(self)
        elif kind == PUSH_PROMISE:
            raise _ConnectionError(PROTOCOL_ERROR, "clients may not push")
        else:  # unknown frame types are ignored (RFC 9113 4.1), within the flood budget
            self._cheap_frame()

    def _cheap_frame(self) -> None:
        self._cheap += 1
        if self._cheap > self._cheap_limit:
            self._flooded()

    def _flooded(self) -> None:
        """Over the flat budget of frames that make no progress: the window's allowance grows with
        the streams opened and the DATA pieces sent in it (grpcio sends a stream WINDOW_UPDATE with
        each request, a connection one after answers, BDP PINGs as data arrives); over that too,
        the connection is cut off (as h2 servers do against the PING, SETTINGS and empty-frame
        floods of CVE-2019-9512/9515/9518, and their kin)."""
        limits = self._limits
        progress = self._opened - self._flood_opened + self._pieces - self._flood_pieces
        allowance = limits.flood_frames_per_s + limits.flood_credit_per_call * progress
        if self._cheap > allowance:
            raise _ConnectionError(ENHANCE_YOUR_CALM, f"{self._cheap} frames that make no progress "
                                                      "(PING, SETTINGS, WINDOW_UPDATE, empty, ...) within a second")
        self._cheap_limit = allowance

    def _owe_ack(self) -> None:
        """An ACK written while the client does not read what we already have for it."""
        self._owed += 1
        if self._owed > self._limits.max_owed_acks:
            raise _ConnectionError(ENHANCE_YOUR_CALM, f"{self._owed} PING/SETTINGS ACKs owed to a client "
                                                      "that does not read")

    def _settings(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id:
            raise _ConnectionError(PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & ACK:
            if payload:
                raise _ConnectionError(FRAME_SIZE_ERROR, "SETTINGS ACK with a payload")
            return
        if len(payload) % 6:
            raise _ConnectionError(FRAME_SIZE_ERROR, "SETTINGS payload is not a multiple of 6")
        for index in range(0, len(payload), 6):
            key, value = SETTING.unpack_from(payload, index)
            if key == S_INITIAL_WINDOW_SIZE:
                if value > MAX_WINDOW:
                    raise _ConnectionError(FLOW_CONTROL_ERROR, "initial window size over 2^31-1")
                delta = value - self._peer_stream_window
                self._peer_stream_window = value
                for stream in self._streams.values():
                    stream.send_window += delta
                    if stream.send_window > MAX_WINDOW:
                        raise _ConnectionError(FLOW_CONTROL_ERROR, "a stream window grew over 2^31-1")
            elif key == S_MAX_FRAME_SIZE:
                if not DEFAULT_FRAME <= value <= (1 << 24) - 1:
                    raise _ConnectionError(PROTOCOL_ERROR, f"max frame size {value} out of range")
                self._peer_frame = value
            elif key == S_ENABLE_PUSH:
                if value > 1:
                    raise _ConnectionError(PROTOCOL_ERROR, "ENABLE_PUSH is not 0 or 1")
            # HEADER_TABLE_SIZE: our answers never index, so the client's table size does not matter.
        if self._write_paused:
            self._owe_ack()
        self._write(frame(SETTINGS, ACK, 0))
        if self._blocked:
            self._flush_blocked()

    def _window_update(self, stream_id: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise _ConnectionError(FRAME_SIZE_ERROR, "WINDOW_UPDATE payload is not 4 bytes")
        increment = U32.unpack(payload)[0] & MAX_WINDOW
        if not stream_id:
            if not increment:
                raise _ConnectionError(PROTOCOL_ERROR, "WINDOW_UPDATE of 0 on the connection")
            self._peer_window += increment
            if self._peer_window > MAX_WINDOW:
                raise _ConnectionError(FLOW_CONTROL_ERROR, "the connection window grew over 2^31-1")
        else:
            stream = self._streams.get(stream_id)
            if stream is None:
                if stream_id > self._last_stream:
                    raise _ConnectionError(PROTOCOL_ERROR, "WINDOW_UPDATE on an idle stream")
                return
            if not increment:
                self._reset(stream_id, PROTOCOL_ERROR)
                return
            stream.send_window += increment
            if stream.send_window > MAX_WINDOW:
                self._reset(stream_id, FLOW_CONTROL_ERROR)
                return
        if self._blocked:
            self._flush_blocked()

    def _strip_padding(self, flags: int, payload: bytes) -> bytes:
        if flags & PADDED:
            if not payload:
                raise _ConnectionError(PROTOCOL_ERROR, "padded frame without a pad length")
            pad = payload[0]
            if pad >= len(payload):
                raise _ConnectionError(PROTOCOL_ERROR, "padding longer than the frame")
            return payload[1:len(payload) - pad]
        return payload

    def _data(self, flags: int, stream_id: int, payload: bytes) -> None:
        if not stream_id:
            raise _ConnectionError(PROTOCOL_ERROR, "DATA on stream 0")
        size = len(payload)  # padding counts towards flow control too
        if not size and not flags & END_STREAM:
            self._cheap_frame()
        self._recv_unacked += size
        self._recv_window -= size
        if self._recv_window < 0:
            raise _ConnectionError(FLOW_CONTROL_ERROR, "the client sent past the connection window")
        stream = self._streams.get(stream_id)
        if stream is None:
            if stream_id > self._last_stream:
                raise _ConnectionError(PROTOCOL_ERROR, "DATA on an idle stream")
            return  # a stream we already answered or reset: drop
        if stream.half_closed:
            self._reset(stream_id, STREAM_CLOSED)
            return
        stream.recv_window -= size
        if stream.recv_window < 0:
            raise _ConnectionError(FLOW_CONTROL_ERROR, f"stream {stream_id} sent past its window")
        data = self._strip_padding(flags, payload)
        if not stream.refused:
            body = stream.body
            body += data
            self._held += len(data)
            if len(body) >= 5 and self._too_large(stream):
                return
            if self._held > self._limits.connection_buffer:
                self._refuse(stream, grpc.StatusCode.RESOURCE_EXHAUSTED,
                             f"this connection holds {self._held} bytes of unfinished requests, "
                             f"over its limit of {self._limits.connection_buffer}")
                return
            stream.unacked += size
            if stream.unacked >= self._limits.stream_window // 2 and not flags & END_STREAM:
                stream.recv_window += stream.unacked
                self._write(frame(WINDOW_UPDATE, 0, stream_id, U32.pack(stream.unacked)))
                stream.unacked = 0
        if stream.inbox is not None and not stream.refused:
            self._feed(stream, bool(flags & END_STREAM))
            if flags & END_STREAM:
                stream.half_closed = True
            return
        if flags & END_STREAM:
            self._request_ended(stream)

    def _request_ended(self, stream: _Stream) -> None:
        """The client half-closed a unary request: answer it, or forget it if it was refused."""
        stream.half_closed = True
        if stream.refused:
            self._streams.pop(stream.id, None)
        else:
            self._dispatch(stream)

    def _drop_body(self, stream: _Stream) -> None:
        self._held -= len(stream.body)
        stream.body = bytearray()
        stream.scanned = 0

    def _too_large(self, stream: _Stream) -> bool:
        """Refuse a message over the limit as soon as its length prefix (or its bytes) say so."""
        limit = self._limits.max_message_bytes
        body = stream.body
        offset = stream.scanned  # each prefix is read once, not once per DATA frame
        while len(body) - offset >= 5:
            length = U32.unpack_from(body, offset + 1)[0]
            if length > limit:
                self._refuse(stream, grpc.StatusCode.RESOURCE_EXHAUSTED,
                             f"the request message is {length} bytes, over the limit of {limit}")
                return True
            offset += 5 + length
        stream.scanned = offset
        return False

    def _headers(self, flags: int, stream_id: int, payload: bytes) -> None:
        if not stream_id or not stream_id & 1:
            raise _ConnectionError(PROTOCOL_ERROR, f"HEADERS on stream {stream_id} (client streams are odd)")
        block = self._strip_padding(flags, payload)
        if flags & PRIORITY_FLAG:
            if len(block) < 5:
                raise _ConnectionError(FRAME_SIZE_ERROR, "HEADERS priority fields truncated")
            if U32.unpack_from(block)[0] & MAX_WINDOW == stream_id:
                raise _ConnectionError(PROTOCOL_ERROR, "a stream cannot depend on itself")
            block = block[5:]
        if flags & END_HEADERS:
            self._header_block(stream_id, flags, block)
        else:
            self._continuing = (stream_id, flags, bytearray(block))

    def _head(self, block: bytes) -> RequestHead:
        """The request head of a header block; a block that leaves the HPACK table as it was
        (all indexed or non-indexing literals, the usual repeat request) is parsed once and reused
        while the table stands still."""
        cached = self._decoded.get(block)
        table = self._table
        if cached is not None and cached[0] == table.generation:
            return cached[1]
        before = table.generation
        try:
            headers = self._decoder.decode(block)
        except OversizedHeaderListError as exc:
            raise _ConnectionError(ENHANCE_YOUR_CALM, f"header list too large: {exc}") from None
        except (HPACKError, IndexError, ValueError) as exc:
            raise _ConnectionError(COMPRESSION_ERROR, f"bad HPACK block: {exc}") from None
        head = RequestHead(headers)  # type: ignore[arg-type]
        if table.generation == before and len(block) <= 4096:  # bounded: at most 256 x 4 KiB per connection
            if len(self._decoded) >= 256:
                self._decoded.clear()
            self._decoded[block] = (before, head)
        return head

    def _header_block(self, stream_id: int, flags: int, block: bytes) -> None:
        head = self._head(block)  # always decoded: the HPACK state must follow the client's
        stream = self._streams.get(stream_id)
        if stream is not None:  # trailers from the client
            if not flags & END_STREAM:
                raise _ConnectionError(PROTOCOL_ERROR, "trailers without END_STREAM")
            if stream.half_closed:
                self._reset(stream_id, STREAM_CLOSED)
                return
            stream.half_closed = True
            if stream.refused:
                self._streams.pop(stream_id, None)
            elif stream.inbox is not None:
                self._feed(stream, True)
            else:
                self._dispatch(stream)
            return
        if stream_id <= self._last_stream:
            # a stream we answered or reset early; the client may not have known yet (RFC 9113 5.1)
            return
        self._last_stream = stream_id
        if self._goaway_sent:
            self._write(frame(RST_STREAM, 0, stream_id, U32.pack(REFUSED_STREAM)))
            return
        if head.malformed:
            self._cheap_frame()  # an empty or broken header block: only a reset comes of it
            self._write(frame(RST_STREAM, 0, stream_id, U32.pack(PROTOCOL_ERROR)))
            log.info("refused stream %d from %s: %s", stream_id, self._peer, head.malformed)
            return
        if len(self._streams) >= self._limits.max_concurrent_streams:
            self._write(frame(RST_STREAM, 0, stream_id, U32.pack(REFUSED_STREAM)))
            return
        stream = _Stream(stream_id, self._peer_stream_window, self._limits.stream_window)
        self._streams[stream_id] = stream
        self._opened += 1
        stream.path = head.path
        stream.metadata = head.metadata
        stream.encoding = head.encoding
        if head.timeout is not None:
            stream.deadline = self._loop.time() + head.timeout
        if head.http_status:
            self._http_error(stream, head.http_status, head.problem)
        elif head.problem:
            self._refuse(stream, head.code, head.problem)
        else:
            handler = self._server.method(head.path, head.metadata)
            if handler is not None and handler.request_streaming:
                self._start_streaming(stream, handler)
                if flags & END_STREAM:
                    stream.half_closed = True
                    stream.inbox.put_nowait(None)  # type: ignore[union-attr]
                    self._run_streaming(stream)
                return
        if flags & END_STREAM:
            self._request_ended(stream)

    # --- calls ----------------------------------------------------------------------------

    def _messages(self, stream: _Stream, partial: bool = False) -> list[bytes] | None:
        """The complete messages of the body (None after a refusal). ``partial``: a streaming
        request still arriving; an incomplete last message stays in the body for later."""
        body = stream.body
        offset, messages = 0, []
        while offset < len(body):
            if len(body) - offset < 5:
                if partial:
                    break
                self._refuse(stream, grpc.StatusCode.INTERNAL, "the request ends inside a message prefix")
                return None
            compressed, length = MSG.unpack_from(body, offset)
            start = offset + 5
            if len(body) < start + length:
                if partial:
                    break
                self._refuse(stream, grpc.StatusCode.INTERNAL, "the request ends inside a message")
                return None
            message = bytes(body[start:start + length])
            if compressed:
                if stream.encoding != "gzip":
                    self._refuse(stream, grpc.StatusCode.INTERNAL,
                                 "a compressed message without a grpc-encoding to read it with")
                    return None
                inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
                try:
                    message = inflate.decompress(message, self._limits.max_message_bytes + 1)
                except zlib.error as exc:
                    self._refuse(stream, grpc.StatusCode.INTERNAL, f"the gzip message is corrupt: {exc}")
                    return None
                if len(message) > self._limits.max_message_bytes:
                    self._refuse(stream, grpc.StatusCode.RESOURCE_EXHAUSTED,
                                 f"the decompressed request is over the limit of {self._limits.max_message_bytes}")
                    return None
            messages.append(message)
            offset = start + length
        if partial and offset:
            self._held -= offset
            stream.scanned -= offset
            del body[:offset]
        return messages

    def _start_streaming(self, stream: _Stream, handler: grpc.RpcMethodHandler) -> None:
        """A client-streaming call runs from its first message (or its end) on, fed message by
        message. Not from its headers: a grpcio client whose call ends while its first write is
        still in progress reports INTERNAL instead of the status we sent."""
        stream.inbox = asyncio.Queue()
        stream.handler = handler
        if stream.deadline is not None:
            stream.timer = self._loop.call_at(stream.deadline, self._expire, stream)

    def _run_streaming(self, stream: _Stream) -> None:
        if stream.task is None and stream.handler is not None:
            context = ServicerContext(stream.metadata, stream.deadline, self._loop, self._peer)
            stream.context = context
            stream.task = self._loop.create_task(self._call(stream, stream.handler, None, context))

    def _feed(self, stream: _Stream, ended: bool) -> None:
        inbox = stream.inbox
        assert inbox is not None
        messages = self._messages(stream, partial=not ended)
        if messages is None:
            self._cancel(stream)
            self._streams.pop(stream.id, None)
            return
        if ended:
            self._drop_body(stream)
        for message in messages:
            inbox.put_nowait(message)
            self._held += len(message)  # held by the connection until the handler takes it (_inbox)
        if ended:
            inbox.put_nowait(None)
        if messages or ended:
            self._run_streaming(stream)

    async def _inbox(self, stream: _Stream, deserialize: Any) -> Any:
        inbox = stream.inbox
        assert inbox is not None
        while (message := await inbox.get()) is not None:
            self._held -= len(message)
            yield deserialize(message) if deserialize else message

    def _dispatch(self, stream: _Stream) -> None:
        handler = self._server.method(stream.path, stream.metadata)
        if handler is None:
            self._refuse(stream, grpc.StatusCode.UNIMPLEMENTED, f"Method not found: {stream.path}")
            self._streams.pop(stream.id, None)
            return
        messages = self._messages(stream)
        if messages is None:
            self._streams.pop(stream.id, None)
            return
        self._drop_body(stream)
        if not handler.request_streaming and len(messages) != 1:
            self._refuse(stream, grpc.StatusCode.INTERNAL,
                         f"a unary call needs exactly one request message, got {len(messages)}")
            self._streams.pop(stream.id, None)
            return
        context = ServicerContext(stream.metadata, stream.deadline, self._loop, self._peer)
        stream.context = context
        stream.task = self._loop.create_task(self._call(stream, handler, messages, context))
        if stream.deadline is not None:
            stream.timer = self._loop.call_at(stream.deadline, self._expire, stream)

    def _expire(self, stream: _Stream) -> None:
        stream.timer = None
        if stream.closed:
            return
        if stream.pending is not None:  # the answer had begun (headers sent), waiting for window
            stream.pending = None
            stream.closed = True
            self._streams.pop(stream.id, None)
            self._write(frame(RST_STREAM, 0, stream.id, U32.pack(CANCEL)))
            self._server.stream_done(self)
            return
        self._refuse(stream, grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
        self._streams.pop(stream.id, None)
        self._cancel(stream)

    async def _call(self, stream: _Stream, handler: grpc.RpcMethodHandler, messages: list[bytes] | None,
                    context: ServicerContext) -> None:
        try:
            deserialize = handler.request_deserializer
            if handler.request_streaming:
                iterator = self._inbox(stream, deserialize)
                if handler.response_streaming:
                    replies = handler.stream_stream(iterator, context)
                else:
                    result = handler.stream_unary(iterator, context)
            else:
                assert messages is not None
                request = deserialize(messages[0]) if deserialize else messages[0]
                if handler.response_streaming:
                    replies = handler.unary_stream(request, context)
                else:
                    result = handler.unary_unary(request, context)
            serialize = handler.response_serializer
            if handler.response_streaming:
                out = []
                if asyncio.iscoroutine(replies):  # a grpc.aio-style handler that answers through context
                    await replies
                elif hasattr(replies, "__aiter__"):
                    async for reply in replies:
                        out.append(serialize(reply) if serialize else reply)
                else:
                    out = [serialize(reply) if serialize else reply for reply in replies]
                self._answer(stream, out, context)
            else:
                if asyncio.iscoroutine(result):
                    result = await result
                if result is None and context.code not in (None, grpc.StatusCode.OK):
                    self._answer(stream, [], context)
                else:
                    self._answer(stream, [serialize(result) if serialize else result], context)
        except Aborted as exc:
            self._finish(stream, exc.code, exc.details, context.trailing)
        except asyncio.CancelledError:
            if not stream.closed:  # cancelled by the server's stop
                self._finish(stream, grpc.StatusCode.CANCELLED, "the server is shutting down", ())
            raise
        except Exception as exc:
            log.exception("the handler of %s failed", stream.path)
            self._finish(stream, grpc.StatusCode.UNKNOWN, f"Unexpected error: {type(exc).__name__}: {exc}",
                         context.trailing)

    def _answer(self, stream: _Stream, replies: list[bytes], context: ServicerContext) -> None:
        if stream.closed:
            return
        code = context.code or grpc.StatusCode.OK
        if code == grpc.StatusCode.OK:
            trailers = OK_TRAILER
            if context.details:
                trailers += literal(b"grpc-message", percent_encode(context.details))
            if context.trailing:
                trailers += metadata_block(context.trailing)
        else:
            trailers = status_block(code, context.details, context.trailing)
        data = b"".join(MSG.pack(0, len(reply)) + reply for reply in replies)
        self._send(stream, data, trailers)

    def _finish(self, stream: _Stream, code: grpc.StatusCode, details: str | None,
                trailing: Sequence[tuple[str, str | bytes]]) -> None:
        if stream.closed:
            return
        stream.closed = True
        self._write(frame(HEADERS, END_HEADERS | END_STREAM, stream.id,
                          RESPONSE_HEAD + status_block(code, details, trailing)))
        self._close_stream(stream)

    def _refuse(self, stream: _Stream, code: grpc.StatusCode, message: str) -> None:
        """A trailers-only error answer before the call ran; the rest of the request is dropped."""
        if stream.closed:
            return
        stream.refused = True
        self._drop_body(stream)
        stream.closed = True
        self._write(frame(HEADERS, END_HEADERS | END_STREAM, stream.id,
                          RESPONSE_HEAD + status_block(code, message)))
        if not stream.half_closed:
            # stop the client sending the rest (RFC 9113 8.1: NO_ERROR after a complete answer)
            self._write(frame(RST_STREAM, 0, stream.id, U32.pack(NO_ERROR)))
            self._streams.pop(stream.id, None)
        if stream.task is not None:  # a client-streaming call already running ends here too
            self._cancel(stream)
        self._server.stream_done(self)

    def _http_error(self, stream: _Stream, status: int, message: str) -> None:
        stream.refused = stream.closed = True
        self._drop_body(stream)
        block = (b"\x08" + hpack_int(3, 7, 0) + str(status).encode()  # :status, static name 8, no indexing
                 + literal(b"content-type", b"text/plain") + literal(b"grpc-status", b"13")
                 + literal(b"grpc-message", percent_encode(message)))
        self._write(frame(HEADERS, END_HEADERS | END_STREAM, stream.id, block))
        if not stream.half_closed:
            self._write(frame(RST_STREAM, 0, stream.id, U32.pack(NO_ERROR)))
            self._streams.pop(stream.id, None)

    def _send(self, stream: _Stream, data: bytes, trailers: bytes) -> None:
        """HEADERS, DATA and trailers in one write when the client's windows allow, else as they open."""
        size = len(data)
        head = frame(HEADERS, END_HEADERS, stream.id, RESPONSE_HEAD)
        if size <= self._peer_window and size <= stream.send_window and size <= self._peer_frame:
            self._peer_window -= size
            stream.send_window -= size
            stream.closed = True
            self._write(head + frame(DATA, 0, stream.id, data)
                        + frame(HEADERS, END_HEADERS | END_STREAM, stream.id, trailers))
            self._close_stream(stream)
            return
        self._write(head)
        stream.pending = [data, trailers]
        self._blocked.append(stream)
        self._flush_blocked()

    def _flush_blocked(self) -> None:
        still: list[_Stream] = []
        done: list[_Stream] = []
        out: list[bytes] = []
        for stream in self._blocked:
            pending = stream.pending
            if pending is None or stream.id not in self._streams:
                continue
            data = pending[0]
            view = memoryview(data)
            sent = 0
            while sent < len(data):
                chunk = min(len(data) - sent, self._peer_window, stream.send_window, self._peer_frame)
                if chunk <= 0:
                    break
                out.append(frame(DATA, 0, stream.id, bytes(view[sent:sent + chunk])))
                self._pieces += 1
                sent += chunk
                self._peer_window -= chunk
                stream.send_window -= chunk
            if sent < len(data):
                pending[0] = data[sent:]
                still.append(stream)
                continue
            out.append(frame(HEADERS, END_HEADERS | END_STREAM, stream.id, pending[1]))
            stream.pending = None
            stream.closed = True
            done.append(stream)
        self._blocked = still
        if out:
            self._write(b"".join(out))
        for stream in done:
            self._close_stream(stream)

    def _close_stream(self, stream: _Stream) -> None:
        self._answered += 1
        self._release_inbox(stream)
        if stream.timer is not None:
            stream.timer.cancel()
            stream.timer = None
        if stream.half_closed:
            self._streams.pop(stream.id, None)
        elif stream.pending is None:
            # Answered before the client finished sending (a streaming call): what it still sends
            # is dropped until its END_STREAM or RST_STREAM. No RST_STREAM(NO_ERROR) here: grpcio
            # clients then fail a write in progress with INTERNAL instead of reading our status.
            stream.refused = True
            self._drop_body(stream)
        self._server.stream_done(self)

    def _release_inbox(self, stream: _Stream) -> None:
        """The messages a client-streaming handler never took stop counting as held."""
        inbox = stream.inbox
        while inbox is not None and not inbox.empty():
            message = inbox.get_nowait()
            if message is not None:
                self._held -= len(message)

    def _cancel(self, stream: _Stream) -> None:
        self._drop_body(stream)
        self._release_inbox(stream)
        if stream.timer is not None:
            stream.timer.cancel()
            stream.timer = None
        if stream.context is not None:
            stream.context._cancelled = True
        stream.closed = True
        task = stream.task
        if task is not None and not task.done():
            task.cancel()
        self._server.stream_done(self)

    def _reset(self, stream_id: int, code: int) -> None:
        self._write(frame(RST_STREAM, 0, stream_id, U32.pack(code)))
        stream = self._streams.pop(stream_id, None)
        if stream is not None:
            self._cancel(stream)
            # resets the client provokes count like its own ("MadeYouReset", CVE-2025-8671)
            self._resets += 1
            if self._resets > 1000 and self._resets > self._answered:
                raise _ConnectionError(ENHANCE_YOUR_CALM, "too many streams reset")

    # --- connection -------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        transport = self._transport
        if transport is not None and not self._closing and not transport.is_closing():
            self._handed += len(data)
            transport.write(data)

    def goaway(self, code: int, reason: str) -> None:
        if self._goaway_sent:
            return
        self._goaway_sent = True
        self._write(frame(GOAWAY, 0, 0, GOAWAY_BODY.pack(self._last_stream, code) + reason.encode()[:256]))

    def _fail(self, code: int, reason: str) -> None:
        log.info("closing an HTTP/2 connection from %s: %s", self._peer, reason)
        self._goaway_sent = False
        self.goaway(code, reason)
        self._closing = True
        transport = self._transport
        if transport is not None:
            if not transport.can_write_eof():
                transport.close()
                return
            # FIN after the GOAWAY, then what the client still sends is read and dropped until it
            # closes: closing with unread input sends RST, which can destroy the GOAWAY in flight.
            transport.write_eof()
            self._loop.call_later(2.0, transport.abort)

    def check(self, now: float) -> None:
        """The server's periodic sweep: the flood window, the idle and the write-stall timeouts.
        Nothing of this runs per frame; the frames only bump counters the sweep compares."""
        if self._closing:
            return
        limits = self._limits
        if now - self._flood_start >= 1.0:
            self._flood_start = now
            self._cheap = 0
            self._cheap_limit = limits.flood_frames_per_s
            self._flood_opened = self._opened
            self._flood_pieces = self._pieces
        if self._streams:
            self._expire_incomplete(now, limits.request_timeout_s)
        elif self._incomplete:
            self._incomplete = {}
        if self._streams or self._reads != self._reads_seen:
            self._reads_seen = self._reads
            self._idle_since = None
        elif self._idle_since is None:
            self._idle_since = now
        elif now - self._idle_since >= limits.idle_timeout_s:
            self._fail(NO_ERROR, f"idle for {limits.idle_timeout_s:g} s (no open stream, no frame)")
            return
        self._check_reading(now, limits)

    def _check_reading(self, now: float, limits: Limits) -> None:
        """While we have something for the client (``_waiting``), it must take at least
        ``min_read_bytes_per_s`` times the write-stall timeout within each such timeout (at
        least one byte when the minimum is 0); having taken that much begins a new window."""
        transport = self._transport
        if transport is None or not self._waiting():
            self._stall_since = None
            return
        taken = self._handed - transport.get_write_buffer_size()
        window = limits.write_stall_timeout_s
        if self._stall_since is None or taken - self._stall_taken >= max(1, limits.min_read_bytes_per_s * window):
            self._stall_since = now
            self._stall_taken = taken
        elif now - self._stall_since >= window:
            self._write_stalled(taken - self._stall_taken)

    def _expire_incomplete(self, now: float, timeout: float) -> None:
        """Streams whose request is still unfinished ``timeout`` after a sweep first saw them get a
        DEADLINE_EXCEEDED answer and a reset (the call never ran; the client stops sending)."""
        seen = self._incomplete
        waiting = {stream_id: seen.get(stream_id, now) for stream_id, stream in self._streams.items()
                   if not stream.half_closed and not stream.closed}
        self._incomplete = waiting
        for stream_id, since in waiting.items():
            if now - since >= timeout:
                stream = self._streams.get(stream_id)
                if stream is not None and not stream.closed:
                    self._refuse(stream, grpc.StatusCode.DEADLINE_EXCEEDED,
                                 f"the request did not arrive within {timeout:g} s")

    def _waiting(self) -> bool:
        """Whether something waits for the client: our write buffer is over its high water mark,
        or answers wait for its flow-control windows."""
        blocked = self._blocked
        if blocked:
            blocked = self._blocked = [stream for stream in blocked
                                       if stream.pending is not None and stream.id in self._streams]
        return bool(blocked) or self._write_paused

    def _write_stalled(self, taken: int) -> None:
        """The client has taken too little (``taken`` bytes) of what we have for it within the
        write-stall timeout: its calls are cancelled, what was queued for it is freed, and the
        socket is aborted (after a GOAWAY when it can still be written: the write buffer is not
        what is stuck)."""
        seconds = self._limits.write_stall_timeout_s
        reason = (f"the client has not read for {seconds:g} s" if not taken else
                  f"the client read {taken} bytes in {seconds:g} s, under the minimum of "
                  f"{self._limits.min_read_bytes_per_s} bytes/s")
        log.info("closing an HTTP/2 connection from %s: %s", self._peer, reason)
        if not self._write_paused:
            self._goaway_sent = False
            self.goaway(NO_ERROR, reason)
        self._closing = True
        streams = list(self._streams.values())
        self._streams.clear()
        self._blocked = []
        for stream in streams:
            stream.pending = None
            self._cancel(stream)
        if self._transport is not None:
            self._transport.abort()

    def busy(self) -> bool:
        return any(not stream.closed or stream.pending is not None for stream in self._streams.values())

    def close(self) -> None:
        self._closing = True
        if self._transport is not None:
            self._transport.close()


class NativeGrpcServer:
    """Listens (SO_REUSEPORT), serves the generic handlers, drains with GOAWAY on stop."""

    def __init__(self, handlers: Sequence[grpc.GenericRpcHandler], host: str, port: int,
                 max_message_bytes: int, *, limits: Limits | None = None, reuse_port: bool = True,
                 tls: ssl.SSLContext | None = None) -> None:
        self._handlers = tuple(handlers)
        #: Server-side TLS context (None: plaintext); it should offer ALPN "h2".
        self.tls = tls
        self._host = host
        self.port = port
        self.limits = limits or Limits(max_message_bytes)
        self._reuse_port = reuse_port
        self._server: asyncio.base_events.Server | None = None
        self._methods: dict[str, grpc.RpcMethodHandler | None] = {}
        self.connections: set[H2Connection] = set()
        self.draining = False
        self._idle: asyncio.Event | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        limits = self.limits
        #: How often the connections' timeouts and flood windows are checked (one timer per server).
        self.sweep_s = min(0.5, limits.idle_timeout_s / 4, limits.write_stall_timeout_s / 4,
                           limits.request_timeout_s / 4)

    def method(self, path: str, metadata: tuple[tuple[str, str | bytes], ...]) -> grpc.RpcMethodHandler | None:
        try:
            return self._methods[path]
        except KeyError:
            pass
        found = None
        for generic in self._handlers:
            found = generic.service(CallDetails(path, metadata))
            if found is not None:
                break
        if len(self._methods) < 1024:
            self._methods[path] = found
        return found

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        host = None if self._host in ("", "0.0.0.0", "[::]", "::") else self._host
        # Over TLS, H2Connection.connection_made (and its preface timer) comes after the TLS
        # handshake, so that handshake has a timeout of its own: a client that connects and never
        # completes it is dropped like one that never sends the preface. Closing waits for the
        # client's close_notify as long as a plaintext close lingers (2 s), not asyncio's 30 s.
        tls = {} if self.tls is None else {
            "ssl": self.tls, "ssl_handshake_timeout": self.limits.handshake_timeout_s, "ssl_shutdown_timeout": 2.0}
        self._server = await loop.create_server(lambda: H2Connection(self), host, self.port,
                                                reuse_port=self._reuse_port, backlog=1024, **tls)
        self.port = self._server.sockets[0].getsockname()[1]
        self._sweeper = loop.call_later(self.sweep_s, self._sweep)

    def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        for connection in list(self.connections):  # a check may close its connection
            try:
                connection.check(now)
            except Exception:  # one connection's bug must not stop the sweep for the others
                log.exception("checking the HTTP/2 connection from %s failed", connection._peer)
        self._sweeper = loop.call_later(self.sweep_s, self._sweep)

    def stream_done(self, connection: H2Connection) -> None:
        if self._idle is not None and not connection.busy():
            self._check_idle()

    def connection_done(self, connection: H2Connection) -> None:
        if self._idle is not None:
            self._check_idle()

    def peer_went_away(self, connection: H2Connection) -> None:
        pass  # the client finishes its calls and closes; nothing to do until then

    def _check_idle(self) -> None:
        if self._idle is not None and not any(c.busy() for c in self.connections):
            self._idle.set()

    async def stop(self, grace_s: float = 5.0) -> None:
        """Refuse new connections and streams, let in-flight calls finish for ``grace_s``, then close."""
        self.draining = True
        if self._server is not None:
            self._server.close()
        self._idle = asyncio.Event()
        for connection in list(self.connections):
            connection.goaway(NO_ERROR, "the server is shutting down")
        self._check_idle()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), grace_s)
        for connection in list(self.connections):
            connection.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        await asyncio.sleep(0)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)


__all__ = ["Aborted", "H2Connection", "Limits", "NativeGrpcServer", "ServicerContext", "frame", "literal",
           "parse_timeout", "percent_encode", "status_block"]
