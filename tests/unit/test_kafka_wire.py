"""The wire-form helpers agree with protobuf: varints (negative ones too) and a serialized message's stand-in."""

from __future__ import annotations

import pytest
from google.protobuf.wrappers_pb2 import BytesValue, Int64Value, StringValue

from loopline_core.kafka.cloudevents import EventTypes, decode, encode, new_event
from loopline_core.kafka.wire import delimited, serialized, varint


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 16383, 16384, 2**31 - 1, 2**35, 2**63 - 1, -1, -300, -(2**63)])
def test_a_varint_is_what_protobuf_writes_for_an_int64(value: int) -> None:
    written = Int64Value(value=value).SerializeToString()
    assert (b"\x08" + varint(value) if value else b"") == written


def test_every_length_is_written_as_protobuf_writes_it() -> None:
    from google.protobuf.internal.encoder import _VarintBytes

    for n in [*range(0, 300), 16383, 16384, 2**21 - 1, 2**21, 2**28 + 5]:
        assert varint(n) == _VarintBytes(n)


@pytest.mark.parametrize("size", [0, 1, 127, 128, 70_000])
def test_a_delimited_field_is_what_protobuf_writes(size: int) -> None:
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    assert (delimited(b"\x0a", data) if data else b"") == BytesValue(value=data).SerializeToString()


def test_a_serialized_message_stands_in_for_its_message_in_an_event() -> None:
    wired_class = serialized(StringValue)
    assert serialized(StringValue) is wired_class  # one class per type: isinstance holds
    data = StringValue(value="héllo").SerializeToString()
    wired = wired_class(data)
    assert (wired.SerializeToString(), wired.ByteSize(), wired.decoded()) == (data, len(data), StringValue(value="héllo"))
    value, headers = encode(new_event(wired, source="/t", subject="s"))  # type: ignore[arg-type]
    event = decode(value, headers, EventTypes(StringValue))
    assert event.type == "google.protobuf.StringValue" and event.data == StringValue(value="héllo")
    assert "bytes" in repr(wired)
