"""What the prediction log writes: one ``PredictionLogged`` per row of an answered request.

``Served`` is what the request path hands over (references to the request and its answer);
``events_of`` builds the events from it, off the request path, each tensor converted once,
and never larger than Kafka takes (``max_event_bytes``: tensors that would pass it are
logged without their values).
"""

from __future__ import annotations

import math
import sys
from array import array
from dataclasses import dataclass
from typing import Any

import numpy as np
from loopline.events.v1 import predictions_pb2
from tritonclient.grpc import service_pb2 as pb

from loopline_core.kafka.cloudevents import derive_event_id
from loopline_core.kafka.producer import Outgoing
from loopline_core.kafka.wire import delimited, serialized, varint

from loopline_serving_gateway.handlers.tensors import bf16_as_fp32, flat_values
from loopline_serving_gateway.handlers.validation import ITEM_BYTES as _ITEM_BYTES


@dataclass(slots=True)
class Served:
    """One answered request (``rows`` predictions), as the request path hands it over."""

    prediction_id: str
    model: str
    version: int
    variant: int
    triton_model: str
    request: pb.ModelInferRequest
    response: pb.ModelInferResponse
    latency_us: int
    served_at_ns: int
    rows: int
    request_key: str = ""
    traceparent: str = ""
    tracestate: str = ""
    fallback_reason: str = ""
    #: Tensor bytes the entry holds, what the log's byte bound counts: the request's as handed
    #: over (``validation.checked``), the answer's added by ``PredictionLog.record``
    #: (``validation.answer_bytes``).
    data_bytes: int = 0
    #: Tensors logged without their values (``events_of``: an event never passes Kafka's record limit).
    omitted_tensors: int = 0


#: Raw little-endian datatypes that ``array`` converts to Python values directly (cheaper than
#: numpy for the small tensors of one request), with their contents field; only on a
#: little-endian host, where ``array``'s native order is the protocol's.
_ARRAY_CODES = {"FP32": ("f", "fp_contents", 4), "FP64": ("d", "fp_contents", 8), "INT32": ("i", "int_contents", 4),
                "INT64": ("q", "int_contents", 8)} if sys.byteorder == "little" else {}
assert all(array(code).itemsize == size for code, _, size in _ARRAY_CODES.values())


#: Bytes one logged value may take in an event, at most (a varint int64: 10; a double: 8).
_VALUE_BYTES = 10
#: Room in an event for everything but its tensors' values (ids, names, shapes, trace context).
_EVENT_OVERHEAD = 4096


#: Per tensor: its head (name, datatype and shape fields, encoded), its batch dimension (``rows``
#: when each row's event holds its own slice, else -1), its shape, its contents field and its
#: flat values (a list, or a float64 array; empty: logged without them).
_Tensor = tuple[bytes, int, tuple[int, ...], str, Any]

_CACHE_MAX = 4096
#: Encoded tensor heads and event heads, by what they encode (the same few recur request after request).
_heads: dict[tuple[object, ...], bytes] = {}


def _text(key: bytes, text: str) -> bytes:
    return delimited(key, text.encode()) if text else b""


def _number(key: bytes, value: int) -> bytes:
    return key + varint(value) if value else b""


def _remembered(key: tuple[object, ...], make: Any) -> bytes:
    found = _heads.get(key)
    if found is None:
        if len(_heads) >= _CACHE_MAX:
            _heads.clear()
        found = _heads[key] = make(*key[1:])
    return found


def _tensor_head(name: str, datatype: str, shape: tuple[int, ...]) -> bytes:
    """common.v1.Tensor's name (1), datatype (2) and packed shape (3) fields."""
    dims = delimited(b"\x1a", b"".join(map(varint, shape))) if shape else b""
    return _text(b"\x0a", name) + _text(b"\x12", datatype) + dims


def _tensors(tensors: Any, raw: Any, rows: int = 1, budget: int | None = None) -> tuple[list[_Tensor], int | None, int]:
    """Each tensor, converted once (see ``_Tensor``); what is left of ``budget`` (bytes one row's
    event may give these values) and how many tensors were left without values. A tensor whose
    values, at most ``_VALUE_BYTES`` each (a BYTES element: its length + 5), would pass what is
    left is kept with its name, datatype and shape but no values: an event is never larger than
    Kafka takes, and large tensors are not converted at all."""
    found: list[_Tensor] = []
    omitted = 0
    for index, tensor in enumerate(tensors):
        shape = tuple(tensor.shape)
        name, datatype = tensor.name, tensor.datatype
        data = raw[index] if raw else None
        batched = rows > 1 and bool(shape) and shape[0] == rows  # each row's event holds its own slice
        head = _remembered(("t", name, datatype, (1, *shape[1:]) if batched else shape), _tensor_head)
        if budget is not None:
            if data is None:
                need = _VALUE_BYTES * math.prod(shape)
            elif datatype == "BYTES":
                need = len(data) + 5 * math.prod(shape)
            else:
                need = len(data) // (_ITEM_BYTES.get(datatype) or 1) * _VALUE_BYTES
            if batched:
                need //= rows
            if need > budget:
                found.append((head, -1, shape, "fp_contents", []))
                omitted += 1
                continue
            budget -= need
        if data is not None:
            field, values = _raw_values(datatype, data)
        else:
            field, values = flat_values(datatype, None, tensor.contents)
        found.append((head, rows if batched else -1, shape, field, values))
    return found, budget, omitted


#: Raw floating-point datatypes, as numpy reads them (little-endian, as the protocol has them).
_FLOATS = {"FP16": "<f2", "FP32": "<f4", "FP64": "<f8"}
#: From this many bytes on, raw floats are widened to doubles by numpy (one pass in C) rather than
#: through Python floats. FP32 to packed doubles, measured: 4096 floats 4.8 against 206 µs, 32 floats
#: 0.93 against 1.41 µs; 16 floats 1.18 against 0.91 µs (numpy's call costs more than the work).
_NUMPY_FROM = 128


def _raw_values(datatype: str, data: bytes) -> tuple[str, Any]:
    """A raw tensor's contents field and values: a float64 array for floats of some size, else a list."""
    dtype = _FLOATS.get(datatype)
    if len(data) >= _NUMPY_FROM and (dtype is not None or datatype == "BF16"):
        itemsize = 2 if dtype is None else int(dtype[2])
        if len(data) % itemsize == 0:
            floats = bf16_as_fp32(data) if dtype is None else np.frombuffer(data, dtype)
            return "fp_contents", floats.astype("<f8")
    code = _ARRAY_CODES.get(datatype)
    if code is not None and len(data) % code[2] == 0:
        return code[1], array(code[0], data).tolist()
    return flat_values(datatype, data)


def _packed(field: str, values: Any) -> bytes:
    """A packed contents field's data: doubles as 8 little-endian bytes each, ints and bools as varints."""
    if isinstance(values, np.ndarray):
        return values.tobytes()  # float64, little-endian
    if field == "fp_contents":
        doubles = array("d", values)  # type: ignore[arg-type]
        if sys.byteorder != "little":
            doubles.byteswap()
        return doubles.tobytes()
    if min(values) >= 0 and max(values) < 0x80:  # type: ignore[type-var]
        return bytes(values)  # type: ignore[arg-type]  # one byte each (bools too)
    return b"".join(map(varint, values))  # type: ignore[arg-type]


#: Keys (field number << 3 | 2, length-delimited) of common.v1.Tensor's packed contents fields.
_CONTENTS_KEYS = {"fp_contents": b"\x22", "int_contents": b"\x2a", "bool_contents": b"\x32"}


def _field(key: bytes, head: bytes, field: str, values: Any) -> list[bytes]:
    """The inputs or outputs field (``key``) holding one tensor, as the pieces to join (a wide
    tensor's values are copied once, by the event's join, not by each level of nesting)."""
    if len(values) == 0:
        body = [head]
    elif field == "bytes_contents":
        body = [head, *(b"\x3a" + varint(len(item)) + item for item in values)]
    else:
        data = _packed(field, values)
        body = [head, _CONTENTS_KEYS[field], varint(len(data)), data]
    return [key, varint(sum(map(len, body))), *body]


def _fields(key: bytes, tensors: list[_Tensor], rows: int) -> list[tuple[bool, list[Any]]]:
    """Per tensor, the ``key`` field holding it: (True, its pieces) for a tensor every row's event
    holds whole, (False, its pieces per row) for a tensor with a batch dimension of ``rows`` (each
    row's event holds its own slice, shape [1, ...])."""
    out: list[tuple[bool, list[Any]]] = []
    for head, batch, _, field, values in tensors:
        if batch < 0:
            out.append((True, _field(key, head, field, values)))
            continue
        width = len(values) // batch
        out.append((False, [_field(key, head, field, values[row * width:(row + 1) * width]) for row in range(rows)]))
    return out


def _event_head(model: str, version: int, variant: int, triton_model: str) -> bytes:
    """PredictionLogged's fields 2-6: model, version, variant, Triton's model and version."""
    return b"".join((_text(b"\x12", model), _number(b"\x18", version), _number(b"\x20", variant),
                     _text(b"\x2a", triton_model), _number(b"\x30", version)))


#: ``PredictionLogged`` in wire form, as the producer takes a message (``decoded()`` parses it back).
WirePredictionLogged = serialized(predictions_pb2.PredictionLogged)


def events_of(entry: Served, max_event_bytes: int | None = None) -> list[Outgoing]:
    """One PredictionLogged per row; a batch of N gets ids ``<id>/<row>``.

    This runs for every served request, on the gateway's event loop, so each event is put
    together in protobuf's wire form (``loopline_core.kafka.wire``), its fields in number order
    as protobuf writes them, from pieces encoded once: the fields every row shares, and the
    heads (name, datatype, shape) of the tensors and events that recur request after request.
    Built as upb messages field by field, a 4096-float prediction took twice as long (its values
    went in one Python float at a time); the bytes are the same. With
    ``max_event_bytes``, tensors whose values would make an event larger are logged without their
    values (outputs are kept first: a label is joined against them); ``omitted_tensors`` on the
    entry says how many."""
    budget = None if max_event_bytes is None else max_event_bytes - _EVENT_OVERHEAD
    rows = entry.rows
    outputs, budget, omitted_out = _tensors(entry.response.outputs, entry.response.raw_output_contents, rows, budget)
    inputs, _, omitted_in = _tensors(entry.request.inputs, entry.request.raw_input_contents, rows, budget)
    entry.omitted_tensors = omitted_out + omitted_in
    seconds, nanos = divmod(entry.served_at_ns, 1_000_000_000)
    served_at = _number(b"\x08", seconds) + _number(b"\x10", nanos)
    trace = _text(b"\x0a", entry.traceparent) + _text(b"\x12", entry.tracestate)
    # fields 2-6, then 9-14 (served_at and trace are always present, as when set field by field)
    head = _remembered(("e", entry.model, entry.version, entry.variant, entry.triton_model), _event_head)
    tail = b"".join((_number(b"\x48", entry.latency_us), b"\x52", varint(len(served_at)), served_at,
                     _text(b"\x5a", entry.request_key), b"\x62", varint(len(trace)), trace,
                     b"\x68\x01" if entry.fallback_reason else b"", _text(b"\x72", entry.fallback_reason)))
    tensors = _fields(b"\x3a", inputs, rows) + _fields(b"\x42", outputs, rows)
    subject = f"{entry.model}/{entry.version}"
    kind = f"prediction/{entry.version}/{entry.variant}"
    events = []
    for row in range(rows):
        pid = entry.prediction_id if rows == 1 else f"{entry.prediction_id}/{row}"
        encoded = pid.encode()
        parts = [b"\x0a", varint(len(encoded)), encoded, head]
        for shared, pieces in tensors:
            parts.extend(pieces if shared else pieces[row])
        parts.append(tail)
        events.append(Outgoing(pid, WirePredictionLogged(b"".join(parts)),  # type: ignore[arg-type]
                               subject=subject, event_id=derive_event_id(pid, kind)))
    return events
