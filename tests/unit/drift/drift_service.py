"""The wired drift detector on the in-memory broker, for the service's unit tests.

A plain module (not a conftest) so that its name is unique in the test session."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone

import numpy as np
from google.protobuf.message import Message
from loopline.events.v1 import drift_inputs_pb2 as dipb
from loopline.events.v1 import drift_pb2 as dpb
from loopline.events.v1 import predictions_pb2 as epb
from loopline_core.kafka.cloudevents import EventTypes, decode
from loopline_core.kafka.memory import InMemoryBroker
from loopline_core.kafka.producer import EventProducer, Outgoing
from loopline_core.kafka.topics import DRIFT, DRIFT_INPUTS, LABELED, PREDICTIONS, RETRAIN
from loopline_core.profiles.reference import NumericProfile, ReferenceProfile

from loopline_drift_detector.adapters.checkpoints import InMemoryCheckpoints
from loopline_drift_detector.adapters.registry import InMemoryVersions, VersionInfo
from loopline_drift_detector.bootstrap import DriftDetector, wire
from loopline_drift_detector.domain.catalogue import ValidationMetrics
from loopline_drift_detector.settings import DriftSettings

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
FEATURES = ("x", "y")
_rng = np.random.default_rng(7)
PROFILE = ReferenceProfile({name: NumericProfile.from_values(_rng.normal(0.0, 1.0, 5000)) for name in FEATURES},
                           5000)
DRIFT_TYPES = EventTypes(dpb.DriftDetected, dpb.RetrainRequested)
INPUT_TYPES = EventTypes(dipb.DriftInputs, epb.PredictionLogged, epb.LabeledPrediction)


def settings(**extra: object) -> DriftSettings:
    return DriftSettings(**{"checkpoint_key": "unit-test-checkpoint-key", "max_records": 50,
                            "retrain": {"cooldown_s": 3600}, **extra})


def versions(profile: ReferenceProfile | None = PROFILE) -> InMemoryVersions:
    infos = {("churn", v): VersionInfo("churn", v, FEATURES, profile, ValidationMetrics(0.8)) for v in (1, 2)}
    return InMemoryVersions(infos)


def shifted_rows(n_before: int, n_after: int, shift: float, seed: int = 1) -> list[list[float]]:
    rng = np.random.default_rng(seed)
    rows = rng.normal(0.0, 1.0, (n_before + n_after, len(FEATURES)))
    rows[n_before:] += shift
    return rows.tolist()


def at(i: int) -> datetime:
    return T0 + timedelta(seconds=i)


class Harness:
    def __init__(self, broker: InMemoryBroker | None = None, store: InMemoryCheckpoints | None = None,
                 source: InMemoryVersions | None = None, **extra: object) -> None:
        self.broker = broker or InMemoryBroker()
        self.store = store or InMemoryCheckpoints()
        self.versions = source or versions()
        self.settings = settings(**extra)
        self.service: DriftDetector = wire(
            self.settings, store=self.store, versions=self.versions, producer_driver=self.broker.producer(),
            route_driver=self.broker.consumer(PREDICTIONS, LABELED, group_id=self.settings.route_group),
            detect_driver_=self.broker.consumer(DRIFT_INPUTS, group_id=self.settings.detect_group))
        self.gateway = EventProducer(self.settings.kafka, service="gateway", driver=self.broker.producer())

    async def publish(self, topic: str, messages: Iterable[Message], key: Callable[[Message], str]) -> None:
        await self.gateway.start()
        await self.gateway.send_batch(topic, [Outgoing(key(m), m) for m in messages])

    async def run_until_idle(self) -> None:
        """Runs both loops until every record of the input topics is processed, then stops them."""
        await self.service.producer.start()
        tasks = [asyncio.create_task(self.service.run_route()), asyncio.create_task(self.service.run_detect())]
        try:
            for _ in range(2000):
                if self._drained():
                    break
                await asyncio.sleep(0.005)
            else:
                raise AssertionError("the drift detector did not drain its input topics")
        finally:
            self.service.route.stop()
            self.service.detect.stop()
            await asyncio.gather(*tasks)
            await self.service.producer.stop()

    def _drained(self) -> bool:
        for topic, group in ((PREDICTIONS, self.settings.route_group), (LABELED, self.settings.route_group),
                             (DRIFT_INPUTS, self.settings.detect_group)):
            for partition, log in enumerate(self.broker._logs[topic]):
                if log and (self.broker.committed(group, topic, partition) or 0) < len(log):
                    return False
        return True

    def events(self, topic: str) -> list[Message]:
        return [decode(r.value, r.headers, DRIFT_TYPES).data for r in self.broker.records(topic)]

    def drifts(self) -> list[dpb.DriftDetected]:
        return self.events(DRIFT)  # type: ignore[return-value]

    def retrains(self) -> list[dpb.RetrainRequested]:
        return self.events(RETRAIN)  # type: ignore[return-value]

    def routed(self) -> list[Message]:
        """The events on loopline.drift-inputs.v1, out of their batches (by partition, in order)."""
        out: list[Message] = []
        for r in self.broker.records(DRIFT_INPUTS):
            message = decode(r.value, r.headers, INPUT_TYPES).data
            if isinstance(message, dipb.DriftInputs):
                out += [*message.predictions, *message.labeled]
            else:
                out.append(message)
        return out
