"""CloudEvents 1.0 over Kafka, binary content mode, with protobuf payloads.

The record value is the serialized protobuf message; the event attributes travel
as ``ce_*`` headers (``ce_type`` is the message's protobuf full name) and
``content-type`` is ``application/protobuf``. Decoding accepts only the message
classes a consumer expects and raises :class:`MalformedEvent` naming what is wrong,
so that the consumer loop can dead-letter the record.

>>> from google.protobuf.wrappers_pb2 import StringValue
>>> types = EventTypes(StringValue)
>>> event = new_event(StringValue(value="hi"), source="/loopline/demo", subject="m/1")
>>> value, headers = encode(event)
>>> decode(value, headers, types) == event
True
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

from google.protobuf.message import DecodeError, Message

from loopline_core.errors import MalformedEvent

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/protobuf"
REQUIRED = ("ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "content-type")

#: Namespace of derived event ids; fixed forever so that ids stay reproducible.
_DERIVED_IDS = uuid.uuid5(uuid.NAMESPACE_URL, "urn:loopline:event-id")
_DERIVED_ID_BYTES = _DERIVED_IDS.bytes

Headers = list[tuple[str, bytes]]
M = TypeVar("M", bound=Message)


@dataclass(frozen=True)
class CloudEvent(Generic[M]):
    id: str
    source: str
    type: str
    time: datetime
    data: M
    subject: str | None = None


def source_for(service: str) -> str:
    return f"/loopline/{service}"


def type_of(message_class: type[Message]) -> str:
    return str(message_class.DESCRIPTOR.full_name)


def derive_event_id(cause_id: str, purpose: str) -> str:
    """The id of an event caused by ``cause_id``: the same inputs give the same id,
    so a retried handler re-emits an event its consumers already deduplicate.

    Equal to ``str(uuid.uuid5(_DERIVED_IDS, f"{cause_id}\\n{purpose}"))`` (RFC 4122 §4.3),
    computed without the ``UUID`` object: joins derive one id per record.
    """
    digest = bytearray(hashlib.sha1(_DERIVED_ID_BYTES + f"{cause_id}\n{purpose}".encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with microseconds, e.g. ``2026-01-02T03:04:05.000006Z``."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def new_event(message: M, *, source: str, event_id: str | None = None, subject: str | None = None,
              time: datetime | None = None) -> CloudEvent[M]:
    return CloudEvent(
        id=event_id or str(uuid.uuid4()),
        source=source,
        type=type_of(type(message)),
        time=time or datetime.now(UTC),
        data=message,
        subject=subject,
    )


class EventTypes:
    """The message classes a consumer accepts, by protobuf full name."""

    def __init__(self, *classes: type[Message]) -> None:
        self._classes = {type_of(cls): cls for cls in classes}
        #: Header lists already accepted, less their ``ce_id`` (see ``decode``).
        self._shapes: dict[tuple[tuple[str, bytes], ...], _Shape] = {}

    def __contains__(self, type_name: object) -> bool:
        return type_name in self._classes

    def names(self) -> list[str]:
        return sorted(self._classes)

    def resolve(self, type_name: str) -> type[Message]:
        try:
            return self._classes[type_name]
        except KeyError:
            raise MalformedEvent(
                f"unexpected event type {type_name!r}; expected one of {self.names()}", field="ce_type"
            ) from None


def encode(event: CloudEvent[Message]) -> tuple[bytes, Headers]:
    headers = [
        ("ce_specversion", _SPEC_VERSION_BYTES),
        ("ce_id", event.id.encode()),
        ("ce_source", event.source.encode()),
        ("ce_type", event.type.encode()),
        ("ce_time", _time_header(event.time)),
    ]
    if event.subject:
        headers.append(("ce_subject", event.subject.encode()))
    headers.append(("content-type", _CONTENT_TYPE_BYTES))
    return event.data.SerializeToString(), headers


_SPEC_VERSION_BYTES = SPEC_VERSION.encode()
_CONTENT_TYPE_BYTES = CONTENT_TYPE.encode()


@functools.lru_cache(maxsize=64)
def _time_header(moment: datetime) -> bytes:
    # The events of one send_batch share their time: formatted once.
    return format_time(moment).encode()


#: Header values that repeat from record to record (spec version, source, type, time
#: of one producer batch, content type), decoded once. Bounded: when full it is cleared.
_TEXTS: dict[bytes, str] = {}
_TEXTS_MAX = 4096
_REPEATING = frozenset(("ce_specversion", "ce_source", "ce_type", "ce_time", "ce_subject", "content-type"))


def _attributes(headers: Sequence[tuple[str, bytes]]) -> dict[str, str]:
    """The ``ce_*`` and ``content-type`` headers, decoded; a repeated or non-UTF-8 one is malformed."""
    found: dict[str, str] = {}
    texts = _TEXTS
    for key, raw in headers:
        if key[:3] != "ce_" and key != "content-type":
            continue
        if key in found:
            raise MalformedEvent(f"header {key} appears more than once", field=key)
        text = texts.get(raw) if raw else ""
        if text is None:
            try:
                text = raw.decode()
            except UnicodeDecodeError:
                raise MalformedEvent(f"header {key} is not UTF-8", field=key) from None
            if key in _REPEATING:
                if len(texts) >= _TEXTS_MAX:
                    texts.clear()
                texts[bytes(raw)] = text
        found[key] = text
    return found


@functools.lru_cache(maxsize=256)
def _parse_time(text: str) -> datetime:
    # Cached: the records of one producer batch share their ce_time. A refused text
    # raises each time (exceptions are not cached).
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise MalformedEvent(f"ce_time {text!r} is not an RFC 3339 timestamp", field="ce_time") from None
    if moment.tzinfo is None:
        raise MalformedEvent(f"ce_time {text!r} has no UTC offset", field="ce_time")
    return moment


#: What a header list says besides the event id, once checked: the message class, type
#: name, time, source and subject.
_Shape = tuple[type[Message], str, datetime, str, "str | None"]
_SHAPES_MAX = 4096


def decode(value: bytes | None, headers: Sequence[tuple[str, bytes]], types: EventTypes) -> CloudEvent[Message]:
    # The records of one producer batch differ only in ce_id (second, as ``encode`` writes
    # it): the other headers, as bytes, key what checking them found the first time.
    shape = key = None
    if len(headers) > 1 and headers[1][0] == "ce_id":
        key = (headers[0], *headers[2:])
        try:
            shape = types._shapes.get(key)
        except TypeError:  # a header value that is not bytes (unhashable): the full path
            key = None
        if shape is not None:
            raw_id = headers[1][1]
            try:
                event_id = raw_id.decode() if raw_id else None
            except (UnicodeDecodeError, AttributeError):
                event_id = None
            if event_id is not None:
                return _event(value, event_id, *shape)
    attributes = _attributes(headers)
    get = attributes.get
    for name in REQUIRED:
        if not get(name):
            raise MalformedEvent(f"required header {name} is missing or empty", field=name)
    if attributes["ce_specversion"] != SPEC_VERSION:
        raise MalformedEvent(
            f"ce_specversion {attributes['ce_specversion']!r} is not {SPEC_VERSION}", field="ce_specversion")
    if attributes["content-type"] != CONTENT_TYPE:
        raise MalformedEvent(
            f"content-type {attributes['content-type']!r} is not {CONTENT_TYPE}", field="content-type")
    type_name = attributes["ce_type"]
    shape = (types.resolve(type_name), type_name, _parse_time(attributes["ce_time"]), attributes["ce_source"],
             get("ce_subject") or None)
    if key is not None:
        shapes = types._shapes
        if len(shapes) >= _SHAPES_MAX:
            shapes.clear()
        shapes[key] = shape
    return _event(value, attributes["ce_id"], *shape)


def _event(value: bytes | None, event_id: str, message_class: type[Message], type_name: str, moment: datetime,
           source: str, subject: str | None) -> CloudEvent[Message]:
    try:
        message = message_class.FromString(value or b"")
    except DecodeError as exc:
        raise MalformedEvent(f"value is not a valid {type_name}: {exc}", field="value") from None
    # The frozen dataclass's __init__ sets each field through object.__setattr__;
    # filling the instance dict directly gives the same object at a third of the cost.
    event = _new_object(CloudEvent)
    fields = event.__dict__
    fields["id"] = event_id
    fields["source"] = source
    fields["type"] = type_name
    fields["time"] = moment
    fields["data"] = message
    fields["subject"] = subject
    return event


_new_object = object.__new__
