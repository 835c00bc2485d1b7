"""What a gRPC call looks like to the native edge's connections (``h2_edge``) and to handlers.

The request head (RFC 9113 8.2/8.3 and gRPC over HTTP/2, checked once per request), the
context a handler sees (a subset of ``grpc.aio.ServicerContext``), the call details a generic
handler is asked with, and the limits one connection works under. The connection state
machine that uses them is ``h2_edge.H2Connection``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Sequence

import grpc

from loopline_serving_gateway.entrypoints.h2_wire import RESERVED_HEADERS, parse_timeout


class Aborted(Exception):
    """Raised by ``context.abort``: the call ends with this status."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


class ServicerContext:
    """What a handler sees of its call (a subset of ``grpc.aio.ServicerContext``)."""

    __slots__ = ("_metadata", "_deadline", "_loop", "_peer", "code", "details", "trailing", "_cancelled")

    def __init__(self, metadata: tuple[tuple[str, str | bytes], ...], deadline: float | None,
                 loop: asyncio.AbstractEventLoop, peer: str) -> None:
        self._metadata = metadata
        self._deadline = deadline
        self._loop = loop
        self._peer = peer
        self.code: grpc.StatusCode | None = None
        self.details: str | None = None
        self.trailing: Sequence[tuple[str, str | bytes]] = ()
        self._cancelled = False

    def invocation_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        return self._metadata

    async def abort(self, code: grpc.StatusCode, details: str = "",
                    trailing_metadata: Sequence[tuple[str, str | bytes]] = ()) -> None:
        if code == grpc.StatusCode.OK:
            raise ValueError("abort needs a non-OK status")
        if trailing_metadata:
            self.trailing = trailing_metadata
        raise Aborted(code, details)

    def set_code(self, code: grpc.StatusCode) -> None:
        self.code = code

    def set_details(self, details: str) -> None:
        self.details = details

    def set_trailing_metadata(self, metadata: Sequence[tuple[str, str | bytes]]) -> None:
        self.trailing = metadata

    def time_remaining(self) -> float | None:
        return None if self._deadline is None else max(self._deadline - self._loop.time(), 0.0)

    def peer(self) -> str:
        return self._peer

    def cancelled(self) -> bool:
        return self._cancelled


class CallDetails(grpc.HandlerCallDetails):
    def __init__(self, method: str, invocation_metadata: tuple[tuple[str, str | bytes], ...]) -> None:
        self.method = method
        self.invocation_metadata = invocation_metadata


_CONNECTION_HEADERS = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"})


class RequestHead:
    """What a request's header block says, checked once (RFC 9113 8.2/8.3, gRPC over HTTP/2)."""

    __slots__ = ("path", "metadata", "encoding", "timeout", "malformed", "http_status", "code", "problem")

    def __init__(self, headers: list[tuple[str, str]]) -> None:
        self.path = ""
        self.encoding = ""
        self.timeout: float | None = None
        self.malformed = ""     # a malformed request: the stream is reset with PROTOCOL_ERROR
        self.http_status = 0    # not gRPC: answered with this HTTP status
        self.code = grpc.StatusCode.INTERNAL
        self.problem = ""       # a gRPC-level refusal (trailers-only, ``code``)
        method = content_type = ""
        metadata: list[tuple[str, str | bytes]] = []
        seen_regular = False
        for name, value in headers:
            if name[:1] == ":":
                if seen_regular:
                    self.malformed = "a pseudo-header after regular headers"
                elif name == ":path":
                    if self.path:
                        self.malformed = "a second :path"
                    self.path = value
                elif name == ":method":
                    if method:
                        self.malformed = "a second :method"
                    method = value
                elif name not in (":scheme", ":authority"):
                    self.malformed = f"unknown request pseudo-header {name}"
                continue
            seen_regular = True
            if name != name.lower():
                self.malformed = f"header name {name!r} is not lower case"
            elif "\r" in value or "\n" in value or "\x00" in value:
                self.malformed = f"header {name} has a CR, LF or NUL in its value (RFC 9113 8.2.1)"
            elif name in _CONNECTION_HEADERS or (name == "te" and value != "trailers"):
                self.malformed = f"connection-specific header {name}"
            elif name in RESERVED_HEADERS:
                if name == "content-type":
                    content_type = value
                elif name == "grpc-timeout":
                    self.timeout = parse_timeout(value)
                    if self.timeout is None:
                        self.problem = f"malformed grpc-timeout {value!r}"
                elif name == "grpc-encoding":
                    self.encoding = value
            elif name.endswith("-bin"):
                try:
                    metadata.append((name, base64.b64decode(value + "=" * (-len(value) % 4))))
                except (binascii.Error, ValueError):
                    self.problem = f"metadata {name} is not base64"
            else:
                metadata.append((name, value))
        self.metadata = tuple(metadata)
        if not self.malformed and (not method or not self.path):
            self.malformed = "a request without :method or :path"
        if method != "POST":
            self.http_status, self.problem = 405, f"gRPC needs POST, not {method}"
        elif not content_type.startswith("application/grpc"):
            self.http_status, self.problem = 415, f"content-type {content_type!r} is not application/grpc"
        elif not self.problem and self.encoding not in ("", "identity", "gzip"):
            self.code = grpc.StatusCode.UNIMPLEMENTED
            self.problem = f"grpc-encoding {self.encoding} is not supported (identity, gzip)"


class Limits:
    """What one connection accepts; advertised in our SETTINGS."""

    def __init__(self, max_message_bytes: int, *, max_concurrent_streams: int = 1000,
                 stream_window: int = 1 << 20, connection_window: int = 16 << 20,
                 max_frame_size: int = 1 << 20, max_header_list_size: int = 16 << 10,
                 connection_buffer: int | None = None, handshake_timeout_s: float = 20.0,
                 idle_timeout_s: float = 300.0, write_stall_timeout_s: float = 30.0,
                 flood_frames_per_s: int = 1000, flood_credit_per_call: int = 8,
                 max_owed_acks: int = 100, request_timeout_s: float = 30.0,
                 min_read_bytes_per_s: int = 1024) -> None:
        self.max_message_bytes = max_message_bytes
        #: A stream whose request has not fully arrived (no END_STREAM) this long after the sweep
        #: first saw it open is answered DEADLINE_EXCEEDED and reset: a client cannot hold streams
        #: (and so the connection, which is then never idle) open by sending nothing.
        self.request_timeout_s = request_timeout_s
        #: A connection with no open stream that has not completed a frame for this long gets
        #: GOAWAY(NO_ERROR) and is closed (grpc.aio: max_connection_idle).
        self.idle_timeout_s = idle_timeout_s
        #: A client that has not taken any of what we have for it (our write buffer over its high
        #: water mark, or answers waiting for its flow-control windows) for this long is cut off:
        #: its calls are cancelled and what was queued for it is freed.
        self.write_stall_timeout_s = write_stall_timeout_s
        #: ... and one that takes it slower than this on average over that time is cut off too:
        #: a client cannot hold its calls and their answers in our memory by draining a few bytes
        #: now and then. 0: any progress will do.
        self.min_read_bytes_per_s = min_read_bytes_per_s
        #: Frames that cost us work but move no call forward (PING, SETTINGS, WINDOW_UPDATE,
        #: PRIORITY, empty DATA or CONTINUATION, unknown types, ...) one connection may send per
        #: second, plus ``flood_credit_per_call`` for each stream it opened and each DATA frame we
        #: had to send in pieces in that second; over it: GOAWAY(ENHANCE_YOUR_CALM).
        self.flood_frames_per_s = flood_frames_per_s
        self.flood_credit_per_call = flood_credit_per_call
        #: PING and SETTINGS ACKs we may owe a client while our write buffer is over its high
        #: water mark (it does not read); one more: GOAWAY(ENHANCE_YOUR_CALM).
        self.max_owed_acks = max_owed_acks
        #: A connection that has not sent the client preface and its SETTINGS by then is closed
        #: (grpc core's server handshake timeout plays this part on grpc.aio): idle sockets that
        #: never speak HTTP/2 cannot pile up.
        self.handshake_timeout_s = handshake_timeout_s
        self.max_concurrent_streams = max_concurrent_streams
        self.stream_window = stream_window
        self.connection_window = connection_window
        self.max_frame_size = max_frame_size
        self.max_header_list_size = max_header_list_size
        #: Request bytes one connection may hold before they reach a handler (over it, the stream
        #: that crosses it is refused with RESOURCE_EXHAUSTED): memory stays bounded per connection.
        self.connection_buffer = connection_buffer or max(64 << 20, 2 * max_message_bytes + (1 << 20))


__all__ = ["Aborted", "CallDetails", "Limits", "RequestHead", "ServicerContext"]
