"""Saving partition state with its outbox, loading it back, publishing what it decided."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from loopline.events.v1 import drift_pb2 as dpb
from loopline_core.kafka.producer import EventProducer, Outgoing
from loopline_core.kafka.topics import DRIFT, RETRAIN

from loopline_drift_detector.adapters.checkpoints import Checkpoint, CheckpointStore, OutboxEvent
from loopline_drift_detector.adapters.events import drift_detected, retrain_requested
from loopline_drift_detector.domain import checkpoint
from loopline_drift_detector.domain.decisions import DriftDecision, RetrainRequest
from loopline_drift_detector.domain.retrain import RetrainConfig
from loopline_drift_detector.handlers.state import PartitionState

log = logging.getLogger(__name__)
MESSAGES = {"drift": dpb.DriftDetected, "retrain": dpb.RetrainRequested}


def drift_outbox(partition: int, d: DriftDecision) -> OutboxEvent:
    return OutboxEvent(d.drift_id, partition, DRIFT, d.model, f"{d.model}/{d.version}", "drift",
                       drift_detected(d).SerializeToString())


def retrain_outbox(partition: int, r: RetrainRequest) -> OutboxEvent:
    return OutboxEvent(r.request_id, partition, RETRAIN, r.model, f"{r.model}/{r.version}", "retrain",
                       retrain_requested(r).SerializeToString())


class StatePersistence:
    """The states of the partitions this replica owns, and their checkpoints."""

    def __init__(self, store: CheckpointStore, producer: EventProducer, *, group: str, topic: str,
                 key: bytes, retrain: RetrainConfig) -> None:
        self._store, self._producer = store, producer
        self._group, self._topic, self._key, self._retrain = group, topic, key, retrain
        self.states: dict[int, PartitionState] = {}
        #: Held while a batch is applied and while a revoked partition is saved: a
        #: checkpoint never holds a batch half applied (offset moved, decisions not in the outbox).
        self.lock = asyncio.Lock()
        #: Partitions the group gave this replica; None until a rebalance listener
        #: reports one (drivers without a group own every partition they deliver).
        self.owned: set[int] | None = None

    async def state(self, partition: int) -> PartitionState | None:
        """The partition's state; None when the partition was revoked from this
        replica (a batch fetched before the rebalance: its new owner handles it)."""
        if partition in self.states:
            return self.states[partition]
        if self.owned is not None and partition not in self.owned:
            return None
        await self._load([partition])
        return self.states[partition]

    async def assigned(self, partitions: Sequence[int]) -> dict[int, int]:
        """The group gave these partitions to this replica: loads their states
        (publishing what their outbox still holds); returns the offsets to resume
        from, for partitions that have a checkpoint."""
        self.owned = (self.owned or set()) | set(partitions)
        return await self._load(partitions)

    async def _load(self, partitions: Sequence[int]) -> dict[int, int]:
        resume = {}
        for partition in partitions:
            saved = await self._store.load(self._group, self._topic, partition)
            state = None
            if saved is not None:
                try:
                    state = checkpoint.loads(saved.state, key=self._key)
                    resume[partition] = saved.next_offset
                except checkpoint.CheckpointRejected as exc:
                    log.error("partition %s: checkpoint refused (%s); replaying it from the start", partition, exc)
                    resume[partition] = 0
            self.states[partition] = state or PartitionState(self._retrain)
            await self.publish(await self._store.pending(self._group, self._topic, partition))
        return resume

    async def revoked(self, partitions: Sequence[int]) -> None:
        async with self.lock:  # waits for a batch being applied to finish
            self.owned = (self.owned or set()) - set(partitions)
            await self.save_all([p for p in partitions if p in self.states])
            for partition in partitions:
                self.states.pop(partition, None)

    async def save_all(self, partitions: Sequence[int] | None = None) -> None:
        chosen = list(self.states) if partitions is None else list(partitions)
        if chosen:
            await self._store.save(self._group, self._topic, [self._checkpoint(p) for p in chosen])

    async def save(self, partition: int, outbox: Sequence[OutboxEvent]) -> None:
        await self._store.save(self._group, self._topic, [self._checkpoint(partition)], outbox)
        await self.publish(outbox)

    def _checkpoint(self, partition: int) -> Checkpoint:
        state = self.states[partition]
        return Checkpoint(partition, state.next_offset, checkpoint.dumps(state, key=self._key))

    async def publish(self, events: Sequence[OutboxEvent]) -> None:
        for target in (DRIFT, RETRAIN):  # evidence first, then the request that cites it
            chosen = [e for e in events if e.target == target]
            if chosen:
                await self._producer.send_batch(target, [
                    Outgoing(e.key, MESSAGES[e.kind].FromString(e.payload), e.subject, e.event_id)
                    for e in chosen])
        if events:
            await self._store.sent([e.event_id for e in events])
