"""Detecting stage: feeds each model version's monitor from loopline.drift-inputs.v1.

Per partition batch: records below the partition's applied offset are skipped (a
replay after a restart, or the consumer re-running a failed batch record by record),
so each record changes the state exactly once. A decision is saved in the outbox in
the same transaction as the state that made it, and only then published: a restart
resumes from that state and never decides it again. Without decisions, the state is
saved every ``checkpoint_interval_s``; what came after is replayed from Kafka.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from loopline.events.v1 import predictions_pb2 as epb
from loopline_core.errors import InvalidArgument, MalformedEvent
from loopline_core.kafka.handlers import Delivery
from loopline_core.profiles.reference import ReferenceProfile

from loopline_drift_detector.adapters.checkpoints import OutboxEvent
from loopline_drift_detector.adapters.registry import VersionSource
from loopline_drift_detector.domain.config import MonitorConfig
from loopline_drift_detector.domain.decisions import DriftDecision
from loopline_drift_detector.domain.monitor import ModelMonitor
from loopline_drift_detector.handlers.inputs import features_row
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
                 monotonic: Callable[[], float] = time.monotonic, metrics: DriftMetrics | None = None) -> None:
        self.metrics = metrics or DriftMetrics()
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
                decisions = self._apply(state, delivery.event.data)
                if decisions is None:  # a version seen for the first time: ask the registry
                    await self._track(state, delivery.event.data)
                    decisions = self._apply(state, delivery.event.data)
                    assert decisions is not None
                state.next_offset = delivery.offset + 1
                self._dirty.add(partition)
                for decision in decisions:
                    outbox += self._decided(state, partition, decision)
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

    def _apply(self, state: PartitionState, message: object) -> list[DriftDecision] | None:
        """The decisions one record makes; None (nothing done) when its version is not tracked yet."""
        if type(message) is epb.PredictionLogged:
            tracked = state.versions.get((message.model, message.version))
            if tracked is None:
                return None
            if not tracked.data_drift:
                state.counts["inputs_without_profile"] += 1
                return []
            row = features_row(message.inputs)
            if len(row) != len(tracked.feature_names):
                raise MalformedEvent(f"{message.model} v{message.version} has {len(tracked.feature_names)} "
                                     f"features, the prediction {len(row)}", field="inputs")
            return tracked.monitor.observe_row(row, tracked.columns, at=_seconds(message.served_at, "served_at"),
                                               trace_id=trace_id(message.trace.traceparent))
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


def _seconds(stamp: object, field: str) -> float:
    """A protobuf Timestamp as POSIX seconds, to the microsecond (as ``ToDatetime``)."""
    seconds, nanos = stamp.seconds, stamp.nanos  # type: ignore[attr-defined]
    if seconds == 0 and nanos == 0:
        raise MalformedEvent("the event carries no time", field=field)
    return seconds + nanos // 1000 / 1e6
