"""The prediction log: every served prediction becomes PredictionLogged, off the request path.

The request path only appends a reference to the request and response (no copy,
no encoding). A background loop turns them into events and sends them in
batches. The buffer is bounded in events: when Kafka is down it fills, further
predictions are dropped and counted, and the loop keeps retrying the batch in
hand with the same event ids (consumers drop repeats), so it catches up when
Kafka returns. At shutdown it flushes within the grace period; what Kafka has
not acknowledged by then is counted as dropped too (``abandon``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import sys
from array import array
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from loopline.events.v1 import predictions_pb2
from tritonclient.grpc import service_pb2 as pb

from loopline_core.errors import InvalidArgument, LooplineError
from loopline_core.kafka.cloudevents import derive_event_id
from loopline_core.kafka.producer import Outgoing
from loopline_core.kafka.topics import PREDICTIONS

from loopline_serving_gateway.handlers.tensors import flat_values
from loopline_serving_gateway.handlers.validation import ITEM_BYTES as _ITEM_BYTES
from loopline_serving_gateway.settings import PredictionLogSettings

log = logging.getLogger(__name__)
#: Entries turned into events between two turns of the event loop (see ``PredictionLog._build``).
SLICE = 16


class BatchSender(Protocol):
    async def send_batch(self, topic: str, items: Iterable[Outgoing]) -> list[str]: ...


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


class PredictionLog:
    def __init__(self, sender: BatchSender, settings: PredictionLogSettings, *,
                 on_drop: Callable[[int], None] = lambda n: None,
                 on_sent: Callable[[int], None] = lambda n: None,
                 on_omitted: Callable[[int], None] = lambda n: None) -> None:
        self._sender = sender
        self._settings = settings
        self._on_drop = on_drop
        self._on_sent = on_sent
        self._on_omitted = on_omitted
        self._warned_at = -math.inf
        self._entries: deque[Served] = deque()
        self._in_hand: list[Outgoing] = []  # taken from the buffer, not yet acknowledged by Kafka
        self._buffered = 0
        self._buffered_bytes = 0  # of the requests held (each holds its request and answer)
        self.dropped = 0
        self.sent = 0

    @property
    def buffered(self) -> int:
        return self._buffered

    def record(self, entry: Served) -> None:
        if (self._buffered + entry.rows > self._settings.buffer_events
                or self._buffered_bytes + entry.request_bytes > self._settings.buffer_bytes):
            self.dropped += entry.rows
            self._on_drop(entry.rows)
            return
        self._entries.append(entry)
        self._buffered += entry.rows
        self._buffered_bytes += entry.request_bytes

    async def _build(self) -> list[Outgoing]:
        """The events of the oldest entries (up to ``batch_events``), built ``SLICE`` entries at a
        time with the event loop let through in between: a 100 ms batch of a busy gateway is a few
        milliseconds of encoding, which in one go would hold up every request in flight (their p99).
        Entries leave the buffer only once built, so a cancel at shutdown loses none of them."""
        entries, outgoing, built, rows = self._entries, [], 0, 0
        limit = self._settings.batch_events
        while built < len(entries) and rows < limit:
            entry = entries[built]
            outgoing.extend(events_of(entry, self._settings.max_event_bytes))
            if entry.omitted_tensors:
                self._omitted(entry)
            rows += entry.rows
            built += 1
            if built % SLICE == 0:
                await asyncio.sleep(0)
        for _ in range(built):
            self._buffered_bytes -= entries.popleft().request_bytes
        self._buffered -= rows
        return outgoing

    def _omitted(self, entry: Served) -> None:
        self._on_omitted(entry.omitted_tensors)
        now = asyncio.get_running_loop().time()
        if now - self._warned_at >= 60:  # at most a line a minute, however many
            self._warned_at = now
            log.warning("prediction log: %s v%s: %d tensor(s) of prediction %s logged without their values "
                        "(an event holds at most prediction_log.max_event_bytes=%d); counted in "
                        "gateway_prediction_log_omitted_tensors_total", entry.model, entry.version,
                        entry.omitted_tensors, entry.prediction_id, self._settings.max_event_bytes)

    async def _send(self, batch: list[Outgoing]) -> None:
        # Kept until Kafka acknowledges it: a send cancelled at shutdown is
        # re-sent by flush() with the same event ids instead of being lost.
        self._in_hand = batch
        while True:
            try:
                await self._sender.send_batch(PREDICTIONS, batch)
            except InvalidArgument as exc:
                # An event Kafka can never take (its record limit below max_event_bytes, say):
                # retrying the batch would hold up the log for good. One at a time instead; the
                # ones refused are dropped and counted, the rest sent.
                log.error("prediction log: Kafka refused a batch of %d events (%s); sending them one by one",
                          len(batch), exc)
                await self._send_each(batch)
                return
            except LooplineError as exc:
                log.warning("prediction log: %d events not sent yet (%s); retrying", len(batch), exc)
                await asyncio.sleep(self._settings.retry_backoff_ms / 1000)
                continue
            self._in_hand = []
            self.sent += len(batch)
            self._on_sent(len(batch))
            return

    async def _send_each(self, batch: list[Outgoing]) -> None:
        for index, event in enumerate(batch):
            while True:
                try:
                    await self._sender.send_batch(PREDICTIONS, [event])
                except InvalidArgument as exc:
                    self.dropped += 1
                    self._on_drop(1)
                    log.error("prediction log: event %s dropped, Kafka cannot take it: %s", event.key, exc)
                except LooplineError as exc:
                    log.warning("prediction log: event %s not sent yet (%s); retrying", event.key, exc)
                    await asyncio.sleep(self._settings.retry_backoff_ms / 1000)
                    continue
                else:
                    self.sent += 1
                    self._on_sent(1)
                break
            self._in_hand = batch[index + 1:]
        self._in_hand = []

    async def flush(self) -> None:
        if self._in_hand:
            await self._send(self._in_hand)
        while self._entries:
            await self._send(await self._build())

    def abandon(self) -> int:
        """At shutdown, once Kafka has had its grace period: every event not acknowledged
        (still buffered, or in hand and maybe partly written) counts as dropped. Returns how many."""
        lost = len(self._in_hand) + self._buffered
        self._in_hand = []
        self._entries.clear()
        self._buffered = 0
        self._buffered_bytes = 0
        if lost:
            self.dropped += lost
            self._on_drop(lost)
            log.warning("prediction log: %d events not acknowledged by Kafka at shutdown, counted as dropped", lost)
        return lost

    async def run(self) -> None:
        interval = self._settings.flush_interval_ms / 1000
        while True:
            if self._buffered < self._settings.batch_events:
                await asyncio.sleep(interval)
            if self._entries:
                await self._send(await self._build())
