"""HTTP/2 (RFC 9113) and gRPC wire constants and encoders of the native edge (``h2_edge``).

Frames are built with :func:`frame`; our header blocks are HPACK literals that never touch
a dynamic table (RFC 7541 6.2.2), so they can be precomputed (``RESPONSE_HEAD``, the status
trailers) and the client's table size does not matter.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Sequence

import grpc

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# frame types
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
# flags
END_STREAM = ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20
# error codes
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR = 0x0, 0x1, 0x2, 0x3
STREAM_CLOSED, FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR = 0x5, 0x6, 0x7, 0x8, 0x9
ENHANCE_YOUR_CALM = 0xB
# settings
S_HEADER_TABLE_SIZE, S_ENABLE_PUSH, S_MAX_CONCURRENT_STREAMS, S_INITIAL_WINDOW_SIZE = 0x1, 0x2, 0x3, 0x4
S_MAX_FRAME_SIZE, S_MAX_HEADER_LIST_SIZE = 0x5, 0x6

MAX_WINDOW = (1 << 31) - 1
DEFAULT_WINDOW = 65535
DEFAULT_FRAME = 16384

HEAD = struct.Struct(">HBBBI")  # 24-bit length as H + B, type, flags, stream id
U32 = struct.Struct(">I")
MSG = struct.Struct(">BI")
SETTING = struct.Struct(">HI")
GOAWAY_BODY = struct.Struct(">II")

_CODES = {code.value[0]: code for code in grpc.StatusCode}
_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
# Headers the transport consumes; everything else is the call's metadata.
RESERVED_HEADERS = frozenset({"content-type", "te", "grpc-timeout", "grpc-encoding", "grpc-accept-encoding",
                       "user-agent", "content-length", "grpc-message-type"})


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    size = len(payload)
    return HEAD.pack(size >> 8, size & 0xFF, kind, flags, stream_id) + payload


# --- HPACK encoding of our answers: literals that never touch a dynamic table -------------

def hpack_int(value: int, prefix_bits: int, first: int) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def literal(name: bytes, value: bytes) -> bytes:
    """``name: value`` as a literal field without indexing, new name, no Huffman (RFC 7541 6.2.2)."""
    return b"\x00" + hpack_int(len(name), 7, 0) + name + hpack_int(len(value), 7, 0) + value


_STATUS_200 = b"\x88"  # static table entry 8
_CT_GRPC = b"\x0f\x10" + hpack_int(16, 7, 0) + b"application/grpc"  # name: static 31, no indexing
RESPONSE_HEAD = _STATUS_200 + _CT_GRPC
_STATUS_LITERALS = {code: literal(b"grpc-status", str(number).encode()) for number, code in _CODES.items()}
OK_TRAILER = _STATUS_LITERALS[grpc.StatusCode.OK]


def percent_encode(message: str) -> bytes:
    """grpc-message encoding: printable ASCII except '%' as is, everything else %XX of the UTF-8 bytes."""
    raw = message.encode("utf-8", "replace")
    if all(0x20 <= b <= 0x7E and b != 0x25 for b in raw):
        return raw
    return b"".join(bytes((b,)) if 0x20 <= b <= 0x7E and b != 0x25 else b"%%%02X" % b for b in raw)


def metadata_block(metadata: Sequence[tuple[str, str | bytes]]) -> bytes:
    parts = []
    for key, value in metadata:
        name = key.lower()
        if name.endswith("-bin"):
            data = value if isinstance(value, bytes) else value.encode()
            encoded = base64.b64encode(data).rstrip(b"=")
        else:
            encoded = value.encode() if isinstance(value, str) else value
        parts.append(literal(name.encode(), encoded))
    return b"".join(parts)


def status_block(code: grpc.StatusCode, message: str | None,
                 metadata: Sequence[tuple[str, str | bytes]] | None = None) -> bytes:
    block = _STATUS_LITERALS[code]
    if message:
        block += literal(b"grpc-message", percent_encode(message))
    if metadata:
        block += metadata_block(metadata)
    return block


def parse_timeout(value: str) -> float | None:
    """A grpc-timeout header (``1234m``) in seconds; None when malformed."""
    unit = _TIMEOUT_UNITS.get(value[-1:])
    digits = value[:-1]
    if unit is None or not digits.isdigit() or len(digits) > 8:
        return None
    return int(digits) * unit
