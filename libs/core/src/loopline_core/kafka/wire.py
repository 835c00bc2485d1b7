"""Protobuf's wire form written directly, for the hot paths that put records of a known
shape together from pieces already serialized (the joiner's LabeledPrediction from the stored
prediction and label, the drift router's DriftInputs from the events it routes): parsing
them into a message only to serialize it again would cost more there than all the rest.

``Serialized`` stands in for a message where ``EventProducer`` takes one: what the producer
uses of a message is its type's descriptor (for ``ce_type``) and ``SerializeToString``.

>>> [varint(n).hex() for n in (0, 127, 128, 300, 16384)]
['00', '7f', '8001', 'ac02', '808001']
>>> varint(-1).hex()
'ffffffffffffffffff01'
>>> from google.protobuf.wrappers_pb2 import StringValue
>>> wired = serialized(StringValue)(delimited(b"\\x0a", b"hi"))
>>> wired.decoded() == StringValue(value="hi")
True
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

from google.protobuf.message import Message

_ONE_BYTE = [bytes((n,)) for n in range(0x80)]
_U64 = (1 << 64) - 1


def varint(value: int) -> bytes:
    """An integer in protobuf's base-128 varint encoding, least significant group first; a
    negative one as its 64-bit two's complement (ten bytes), as protobuf writes int32, int64
    and enum fields."""
    if 0 <= value < 0x80:
        return _ONE_BYTE[value]
    value &= _U64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def delimited(key: bytes, data: bytes) -> bytes:
    """A length-delimited field (string, bytes, message, packed repeated): its key, the length, the data."""
    return key + varint(len(data)) + data


class Serialized:
    """A message of ``MESSAGE``'s type already in wire form; make the class with ``serialized``."""

    __slots__ = ("_data",)
    DESCRIPTOR: ClassVar[Any]
    MESSAGE: ClassVar[type[Message]]

    def __init__(self, data: bytes) -> None:
        self._data = data

    def SerializeToString(self) -> bytes:  # noqa: N802 - the protobuf method's name
        return self._data

    def ByteSize(self) -> int:  # noqa: N802 - the protobuf method's name
        return len(self._data)

    def decoded(self) -> Message:
        return self.MESSAGE.FromString(self._data)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self._data)} bytes)"


@functools.cache
def serialized(message_class: type[Message]) -> type[Serialized]:
    """The ``Serialized`` class of a message type (one per type, so ``isinstance`` works)."""
    return type(f"Serialized{message_class.__name__}", (Serialized,),
                {"__slots__": (), "DESCRIPTOR": message_class.DESCRIPTOR, "MESSAGE": message_class})
