"""Detecting stage: feeds each model version's monitor from loopline.drift-inputs.v1.

A record is a ``DriftInputs`` (one model's events from one routed batch), or, from
routers before batching, one ``PredictionLogged`` or ``LabeledPrediction``. Per
partition batch: records below the partition's applied offset are skipped (a
replay after a restart, or the consumer re-running a failed batch record by record),
so each record changes the state exactly once. Within a ``DriftInputs``, the model
versions are looked up first, then every event is checked and each version's events
are applied as one batch (``ModelMonitor.observe_rows``: the same state and decisions
as event by event); an event the version's
signature refuses (width), or of a version the registry does not know, is
dead-lettered alone, as a record of its own type, once the record's offset and
decisions are in the state (a failed send can then not apply the record twice).
A decision is saved in the outbox in the same transaction as the state that made it, and only then published: a restart
resumes from that state and never decides it again. Without decisions, the state is
saved every ``checkpoint_interval_s``; what came after is replayed from Kafka.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from google.protobuf.message import Message
from loopline.events.v1 import drift_inputs_pb2 as dipb
from loopline.events.v1 import predictions_pb2 as epb
from loopline_core.errors import InvalidArgument, LooplineError, MalformedEvent
from loopline_core.kafka.cloudevents import derive_event_id, encode, new_event
from loopline_core.kafka.dead_letter import Failure, dead_letter_headers, error_type
from loopline_core.kafka.handlers import Delivery
from loopline_core.kafka.producer import EventProducer
from loopline_core.kafka.retry import Backoff
from loopline_core.kafka.topics import dead_letter_topic
from loopline_core.profiles.reference import ReferenceProfile

from loopline_drift_detector.adapters.checkpoints import OutboxEvent
from loopline_drift_detector.adapters.registry import VersionSource
from loopline_drift_detector.domain.config import MonitorConfig
from loopline_drift_detector.domain.decisions import DriftDecision
from loopline_drift_detector.domain.monitor import ModelMonitor
from loopline_drift_detector.handlers.inputs import FEATURES, features_row
from loopline_drift_detector.handlers.metrics import DriftMetrics
from loopline_drift_detector.handlers.outbox import StatePersistence, drift_outbox, retrain_outbox
from loopline_drift_detector.handlers.state import PartitionState, Tracked

log = logging.getLogger(__name__)
EMPTY = ReferenceProfile({}, 0)


def trace_id(traceparent: str) -> str:
    parts = traceparent.split("-")
    return parts[1] if len(parts) == 4 else ""


class Detection:
    def __init__(self, versions: VersionSource, persistence: StatePersistence, *,
                 config_for: Callable[[str], MonitorConfig], checkpoint_interval_s: float = 5.0,
                 monotonic: Callable[[], float] = time.monotonic, metrics: DriftMetrics | None = None,
                 dead_letters: EventProducer | None = None, group: str = "drift-detector",
                 backoff: Backoff | None = None) -> None:
        """``dead_letters``: where an event refused inside a ``DriftInputs`` goes (to
        ``<topic>.dlq``); without it such an event is only counted and logged."""
        self.metrics = metrics or DriftMetrics()
        self._dead_letters = dead_letters
        self._group = group
        self._backoff = backoff or Backoff(0.1, 5.0)
        self._versions = versions
        self._persistence = persistence
        self._config_for = config_for
        self._interval = checkpoint_interval_s
        self._monotonic = monotonic
        self._saved_at: dict[int, float] = {}
        self._dirty: set[int] = set()
        #: A save never sees a batch half applied (its decisions not yet in the outbox),
        #: and a partition is not revoked in the middle of a batch.
        self._lock = persistence.lock

    async def on_batch(self, deliveries: Sequence[Delivery]) -> None:
        async with self._lock:
            await self._on_batch(deliveries)

    async def _on_batch(self, deliveries: Sequence[Delivery]) -> None:
        partition = deliveries[0].partition
        state = await self._persistence.state(partition)
        if state is None:
            log.info("drift-inputs[%s]: batch of %d skipped, the partition moved to another replica",
                     partition, len(deliveries))
            return
        outbox: list[OutboxEvent] = []
        try:
            for delivery in deliveries:
                if delivery.offset < state.next_offset:
                    continue
                message = delivery.event.data
                refused: list[tuple[int, Message, Exception]] = []
                if type(message) is dipb.DriftInputs:
                    decisions = await self._apply_inputs(state, message, refused)
                else:
                    decisions = self._apply(state, message)
                    if decisions is None:  # a version seen for the first time: ask the registry
                        await self._track(state, message)
                        decisions = self._apply(state, message)
                        assert decisions is not None
                state.next_offset = delivery.offset + 1
                self._dirty.add(partition)
                for decision in decisions:
                    outbox += self._decided(state, partition, decision)
                if refused:
                    await self._dead_letter_all(delivery, refused)
        finally:
            if outbox or self._monotonic() - self._saved_at.get(partition, 0.0) >= self._interval:
                await self._save(partition, outbox)

    async def _save(self, partition: int, outbox: Sequence[OutboxEvent] = ()) -> None:
        await self._persistence.save(partition, outbox)
        self._saved_at[partition] = self._monotonic()
        self._dirty.discard(partition)
        self.metrics.report(self._persistence.states[partition])

    async def save_all(self) -> None:
        """Saves every partition held, and reports it (the detect loop has stopped)."""
        await self._persistence.save_all()
        for state in self._persistence.states.values():
            self.metrics.report(state)

    async def flush_idle(self) -> None:
        """Saves what changed and was not saved for ``checkpoint_interval_s`` (the stream went quiet)."""
        async with self._lock:
            now = self._monotonic()
            for partition in sorted(self._dirty):
                if partition in self._persistence.states and now - self._saved_at.get(partition, 0.0) >= self._interval:
                    await self._save(partition)

    async def run_flusher(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.flush_idle()

    def _decided(self, state: PartitionState, partition: int, decision: DriftDecision) -> list[OutboxEvent]:
        state.counts[f"decisions.{decision.kind.value}"] += 1
        self.metrics.decisions.labels(decision.model, decision.kind.value).inc()
        events = [drift_outbox(partition, decision)]
        request = state.policy.on_drift(decision)
        if request is not None:
            state.counts["retrain_requests"] += 1
            self.metrics.retrain_requests.labels(request.model).inc()
            events.append(retrain_outbox(partition, request))
        return events

    async def _apply_inputs(self, state: PartitionState, inputs: dipb.DriftInputs,
                            refused: list[tuple[int, Message, Exception]]) -> list[DriftDecision]:
        """The decisions of one routed batch. Versions are looked up before any event is
        applied, so a retryable registry failure leaves the state untouched (the batch is
        retried); refused events are added to ``refused`` (index, event, why)."""
        versions = state.versions
        predictions, outcomes = list(inputs.predictions), list(inputs.labeled)
        prediction_keys = [(p.model, p.version) for p in predictions]
        outcome_keys = [(o.prediction.model, o.prediction.version) for o in outcomes]
        wanted = set(prediction_keys).union(outcome_keys)
        unknown: dict[tuple[str, int], LooplineError] = {}
        for model, version in sorted(wanted.difference(versions)):
            try:
                await self._tracked(state, model, version)
            except LooplineError as exc:
                if exc.retryable:
                    raise
                unknown[(model, version)] = exc
        # Every event is checked first (as ``_observe_prediction`` and ``_apply`` do, in the
        # same order), then each version's events are applied as a batch: the monitor's
        # batch methods keep the per-event state and decisions, in order.
        groups: dict[tuple[str, int], _Batch | LooplineError | None] = {}
        without_profile = 0
        for index, (p, key) in enumerate(zip(predictions, prediction_keys)):
            group = groups.get(key, _NEW)
            if group is _NEW:
                group = groups[key] = _group(versions.get(key), unknown.get(key), for_rows=True)
            if type(group) is not _Batch:
                if group is None:
                    without_profile += 1
                else:
                    refused.append((index, p, group))  # type: ignore[arg-type]
                continue
            try:
                row = _row(p, group.width)
                stamp = p.served_at
                seconds, nanos = stamp.seconds, stamp.nanos
                if seconds == 0 and nanos == 0:
                    raise MalformedEvent("the event carries no time", field="served_at")
            except MalformedEvent as exc:
                refused.append((index, p, exc))
                continue
            group.indices.append(index)
            group.items.append(row)
            group.ats.append(seconds + nanos // 1000 / 1e6)
            group.traceparents.append(p.trace.traceparent)
        if without_profile:
            state.counts["inputs_without_profile"] += without_profile
        outcome_groups: dict[tuple[str, int], _Batch | LooplineError | None] = {}
        for index, (o, key) in enumerate(zip(outcomes, outcome_keys), start=len(predictions)):
            group = outcome_groups.get(key, _NEW)
            if group is _NEW:
                group = outcome_groups[key] = _group(versions.get(key), unknown.get(key), for_rows=False)
            if type(group) is not _Batch:
                refused.append((index, o, group))  # type: ignore[arg-type]
                continue
            stamp = o.joined_at
            seconds, nanos = stamp.seconds, stamp.nanos
            if seconds == 0 and nanos == 0:
                refused.append((index, o, MalformedEvent("the event carries no time", field="joined_at")))
                continue
            group.indices.append(index)
            group.items.append(not o.correct)
            group.ats.append(seconds + nanos // 1000 / 1e6)
            group.traceparents.append(o.prediction.trace.traceparent)
        found = []
        for group in groups.values():
            if type(group) is _Batch and group.indices:
                monitor = group.tracked.monitor
                found += [(group.indices[row], d) for row, d in monitor.observe_rows(
                    np.array(group.items, dtype=float), group.tracked.columns, group.ats, _TraceIds(group.traceparents))]
        decisions = _in_order(found)
        found = []
        for group in outcome_groups.values():
            if type(group) is _Batch and group.indices:
                monitor = group.tracked.monitor
                found += [(group.indices[row], d) for row, d in monitor.observe_outcomes(
                    group.items, group.ats, _TraceIds(group.traceparents))]
        decisions += _in_order(found)
        state.counts["events_dead_lettered"] += len(refused)
        return decisions

    async def _dead_letter_all(self, delivery: Delivery, refused: list[tuple[int, Message, Exception]]) -> None:
        """The refused events of one record, sent together (a version the registry does not
        know refuses all its events: one acknowledged round trip each, one after another,
        would take milliseconds per event). Each is still sent alone, in order."""
        results = await asyncio.gather(*(self._dead_letter(delivery, index, message, exc)
                                         for index, message, exc in refused), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _dead_letter(self, delivery: Delivery, index: int, message: Message, exc: Exception) -> None:
        """One refused event of a ``DriftInputs``, as a record of its own type on ``<topic>.dlq``."""
        p = message if type(message) is epb.PredictionLogged else message.prediction  # type: ignore[attr-defined]
        topic = dead_letter_topic(delivery.topic)
        log.error("%s[%d]@%d: event %d (prediction %s) dead-lettered to %s: %s: %s", delivery.topic,
                  delivery.partition, delivery.offset, index, p.prediction_id, topic, error_type(exc), exc)
        if self._dead_letters is None:
            return
        event = new_event(message, source=self._dead_letters.source, subject=f"{p.model}/{p.version}",
                          event_id=derive_event_id(delivery.event.id, f"drift-refused/{index}"),
                          time=delivery.event.time)
        value, headers = encode(event)
        headers = dead_letter_headers(headers, topic=delivery.topic, partition=delivery.partition,
                                      offset=delivery.offset,
                                      failure=Failure(exc, 1, self._group, datetime.now(UTC)))
        tries = 0
        while True:
            try:
                await self._dead_letters.send_record(topic, key=p.model.encode(), value=value, headers=headers)
                return
            except LooplineError as send_error:
                if not send_error.retryable:
                    raise
                tries += 1
                log.warning("cannot write %s yet (%s); trying again", topic, send_error)
                await asyncio.sleep(self._backoff.delay(tries))

    def _apply(self, state: PartitionState, message: object) -> list[DriftDecision] | None:
        """The decisions one record makes; None (nothing done) when its version is not tracked yet."""
        if type(message) is epb.PredictionLogged:
            tracked = state.versions.get((message.model, message.version))
            if tracked is None:
                return None
            return _observe_prediction(state, tracked, message)
        if type(message) is epb.LabeledPrediction:
            p = message.prediction
            tracked = state.versions.get((p.model, p.version))
            if tracked is None:
                return None
            return tracked.monitor.observe_outcome(not message.correct, at=_seconds(message.joined_at, "joined_at"),
                                                   trace_id=trace_id(p.trace.traceparent))
        raise MalformedEvent(f"unexpected event {type(message).__name__}", field="type")

    async def _track(self, state: PartitionState, message: object) -> None:
        p = message.prediction if isinstance(message, epb.LabeledPrediction) else message
        await self._tracked(state, p.model, p.version)  # type: ignore[attr-defined]

    async def _tracked(self, state: PartitionState, model: str, version: int) -> Tracked:
        key = (model, version)
        tracked = state.versions.get(key)
        if tracked is None:
            info = await self._versions.get(model, version)
            if info.profile is not None and set(info.profile.features) - set(info.feature_names):
                raise InvalidArgument(f"{model} v{version}: profiled features "
                                      f"{sorted(set(info.profile.features) - set(info.feature_names))} "
                                      f"are not in the signature's feature_names", field="reference_profile")
            data = info.profile is not None and bool(info.feature_names)
            monitor = ModelMonitor(model, version, info.profile if data else EMPTY,
                                   config=self._config_for(model), validation=info.validation)
            tracked = state.versions[key] = Tracked(info.feature_names, monitor, data,
                                                    monitor.columns(info.feature_names))
        return tracked


class _Batch:
    """One version's events of a ``DriftInputs``, checked, in order."""

    def __init__(self, tracked: Tracked) -> None:
        self.tracked = tracked
        self.width = len(tracked.feature_names)
        self.indices: list[int] = []
        self.items: list[Any] = []
        self.ats: list[float] = []
        self.traceparents: list[str] = []


_NEW = object()


def _group(tracked: Tracked | None, unknown: LooplineError | None, *, for_rows: bool) -> _Batch | LooplineError | None:
    """Where a version's events go: its batch; its registry error (each is refused); None
    (predictions of a version without a reference profile: counted)."""
    if tracked is None:
        assert unknown is not None
        return unknown
    if for_rows and not tracked.data_drift:
        return None
    return _Batch(tracked)


def _row(p: epb.PredictionLogged, width: int) -> list[float]:
    """``features_row``, checked against the version's width; the common case (the one
    ``features`` tensor, well formed) read at once."""
    inputs = p.inputs
    if len(inputs) == 1:
        tensor = inputs[0]
        if tensor.name == FEATURES and tensor.datatype == "FP32":
            shape, values = tensor.shape, tensor.fp_contents
            if len(shape) == 2 and shape[0] == 1 and shape[1] == len(values) == width:
                return list(values)
    row = features_row(inputs)
    if len(row) != width:
        raise MalformedEvent(f"{p.model} v{p.version} has {width} features, the prediction {len(row)}",
                             field="inputs")
    return row


class _TraceIds:
    """The trace ids of a batch's events, each read from its traceparent when asked
    (a monitor reads the latest few, and those of its decisions)."""

    def __init__(self, traceparents: list[str]) -> None:
        self._traceparents = traceparents

    def __len__(self) -> int:
        return len(self._traceparents)

    def __getitem__(self, i: int) -> str:
        return trace_id(self._traceparents[i])


def _in_order(found: list[tuple[int, DriftDecision]]) -> list[DriftDecision]:
    """Decisions of several versions' batches in the order of their events (stable within one)."""
    if len(found) > 1:
        found = sorted(found, key=lambda f: f[0])  # stable: one event's decisions keep their order
    return [d for _, d in found]


def _observe_prediction(state: PartitionState, tracked: Tracked, message: epb.PredictionLogged) -> list[DriftDecision]:
    """Checks come first: a refused prediction leaves the monitor as it was."""
    if not tracked.data_drift:
        state.counts["inputs_without_profile"] += 1
        return []
    row = features_row(message.inputs)
    if len(row) != len(tracked.feature_names):
        raise MalformedEvent(f"{message.model} v{message.version} has {len(tracked.feature_names)} "
                             f"features, the prediction {len(row)}", field="inputs")
    return tracked.monitor.observe_row(row, tracked.columns, at=_seconds(message.served_at, "served_at"),
                                       trace_id=trace_id(message.trace.traceparent))


def _seconds(stamp: object, field: str) -> float:
    """A protobuf Timestamp as POSIX seconds, to the microsecond (as ``ToDatetime``)."""
    seconds, nanos = stamp.seconds, stamp.nanos  # type: ignore[attr-defined]
    if seconds == 0 and nanos == 0:
        raise MalformedEvent("the event carries no time", field=field)
    return seconds + nanos // 1000 / 1e6
