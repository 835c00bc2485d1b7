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

from loopline.events.v1 import predictions_pb2
from tritonclient.grpc import service_pb2 as pb

from loopline_core.kafka.cloudevents import derive_event_id
from loopline_core.kafka.producer import Outgoing

from loopline_serving_gateway.handlers.tensors import flat_values
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
    #: Bytes of the request's tensor data (``validation.checked``): what the buffer's byte bound counts.
    request_bytes: int = 0
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


def _tensors(tensors: Any, raw: Any, rows: int = 1,
             budget: int | None = None) -> tuple[list[tuple[str, str, list[int], str, list[object]]], int | None, int]:
    """(name, datatype, shape, contents field, flat values) per tensor, each converted once; and
    what is left of ``budget`` (bytes one row's event may give these values) and how many tensors
    were left without values. A tensor whose values, at most ``_VALUE_BYTES`` each (a BYTES element:
    its length + 5), would pass what is left is kept with its name, datatype and shape but no values:
    an event is never larger than Kafka takes, and large tensors are not converted at all."""
    found, omitted = [], 0
    for index, tensor in enumerate(tensors):
        shape = list(tensor.shape)
        data = raw[index] if raw else None
        if budget is not None:
            if data is None:
                need = _VALUE_BYTES * math.prod(shape)
            elif tensor.datatype == "BYTES":
                need = len(data) + 5 * math.prod(shape)
            else:
                need = len(data) // (_ITEM_BYTES.get(tensor.datatype) or 1) * _VALUE_BYTES
            if shape and shape[0] == rows and rows > 1:
                need //= rows  # each row's event holds its own slice
            if need > budget:
                found.append((tensor.name, tensor.datatype, shape, "fp_contents", []))
                omitted += 1
                continue
            budget -= need
        if data is not None:
            code = _ARRAY_CODES.get(tensor.datatype)
            if code is not None and len(data) % code[2] == 0:
                field, values = code[1], array(code[0], data).tolist()
            else:
                field, values = flat_values(tensor.datatype, data)
        else:
            field, values = flat_values(tensor.datatype, None, tensor.contents)
        found.append((tensor.name, tensor.datatype, shape, field, values))
    return found, budget, omitted


def _add_rows(target: Any, tensors: list[tuple[str, str, list[int], str, list[object]]], rows: int,
              row: int) -> None:
    """Row ``row`` of each tensor (the whole tensor when it has no batch dimension of ``rows``),
    built in place in the repeated field ``target`` (no message copied into it)."""
    for name, datatype, shape, field, values in tensors:
        if rows == 1 or not shape or shape[0] != rows:
            target.add(name=name, datatype=datatype, shape=shape, **{field: values})
            continue
        width = len(values) // rows
        target.add(name=name, datatype=datatype, shape=[1, *shape[1:]],
                   **{field: values[row * width:(row + 1) * width]})


def events_of(entry: Served, max_event_bytes: int | None = None) -> list[Outgoing]:
    """One PredictionLogged per row; a batch of N gets ids ``<id>/<row>``.

    Each message is built in place (tensors, timestamp and trace context set on the
    message's own fields rather than built apart and copied in): this runs for every
    served request, on the gateway's event loop. With ``max_event_bytes``, tensors whose
    values would make an event larger are logged without their values (outputs are kept
    first: a label is joined against them); ``omitted_tensors`` on the entry says how many."""
    budget = None if max_event_bytes is None else max_event_bytes - _EVENT_OVERHEAD
    outputs, budget, omitted_out = _tensors(entry.response.outputs, entry.response.raw_output_contents,
                                            entry.rows, budget)
    inputs, _, omitted_in = _tensors(entry.request.inputs, entry.request.raw_input_contents, entry.rows, budget)
    entry.omitted_tensors = omitted_out + omitted_in
    seconds, nanos = divmod(entry.served_at_ns, 1_000_000_000)
    subject = f"{entry.model}/{entry.version}"
    kind = f"prediction/{entry.version}/{entry.variant}"
    fallback = bool(entry.fallback_reason)
    events = []
    for row in range(entry.rows):
        pid = entry.prediction_id if entry.rows == 1 else f"{entry.prediction_id}/{row}"
        message = predictions_pb2.PredictionLogged(
            prediction_id=pid, model=entry.model, version=entry.version, variant=entry.variant,  # type: ignore[arg-type]
            triton_model=entry.triton_model, triton_version=entry.version, latency_us=entry.latency_us,
            request_key=entry.request_key, fallback=fallback, fallback_reason=entry.fallback_reason,
        )
        _add_rows(message.inputs, inputs, entry.rows, row)
        _add_rows(message.outputs, outputs, entry.rows, row)
        served_at = message.served_at
        served_at.seconds = seconds
        served_at.nanos = nanos
        trace = message.trace
        trace.traceparent = entry.traceparent
        trace.tracestate = entry.tracestate
        events.append(Outgoing(pid, message, subject=subject, event_id=derive_event_id(pid, kind)))
    return events
