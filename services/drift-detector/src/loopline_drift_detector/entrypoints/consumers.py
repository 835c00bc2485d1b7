"""The two Kafka loops of the service.

- route (group ``route_group``): loopline.predictions.v1 and loopline.labeled.v1 →
  loopline.drift-inputs.v1, keyed by model; offsets committed to Kafka.
- detect (group ``detect_group``): loopline.drift-inputs.v1. Its position is the
  checkpoint's: when a partition is assigned, its state is loaded and the consumer
  seeks to the checkpoint's next offset; when it is revoked, the state is saved.
"""

from __future__ import annotations

import logging

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from loopline.events.v1 import drift_inputs_pb2 as dipb
from loopline.events.v1 import predictions_pb2 as epb
from loopline_core.kafka.cloudevents import EventTypes
from loopline_core.kafka.consumer import ConsumerDriver, EventConsumer
from loopline_core.kafka.producer import EventProducer
from loopline_core.kafka.topics import DRIFT_INPUTS, LABELED, PREDICTIONS
from loopline_core.settings import KafkaSettings

from loopline_drift_detector.handlers.detect import Detection
from loopline_drift_detector.handlers.outbox import StatePersistence
from loopline_drift_detector.handlers.route import Router

log = logging.getLogger(__name__)
TYPES = EventTypes(epb.PredictionLogged, epb.LabeledPrediction)
#: Routed batches, and single events from routers before batching (still on the topic after an upgrade).
DETECT_TYPES = EventTypes(dipb.DriftInputs, epb.PredictionLogged, epb.LabeledPrediction)


class ResumeFromCheckpoints(ConsumerRebalanceListener):
    def __init__(self, persistence: StatePersistence) -> None:
        self.persistence = persistence
        self.consumer: AIOKafkaConsumer | None = None

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.persistence.revoked([tp.partition for tp in revoked if tp.topic == DRIFT_INPUTS])

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        assert self.consumer is not None
        resume = await self.persistence.assigned([tp.partition for tp in assigned if tp.topic == DRIFT_INPUTS])
        for partition, offset in resume.items():
            self.consumer.seek(TopicPartition(DRIFT_INPUTS, partition), offset)
        log.info("drift-inputs partitions %s assigned, resuming at %s", sorted(tp.partition for tp in assigned),
                 resume)


class DetectDriver:
    """The detect loop's AIOKafkaConsumer, subscribed with ``ResumeFromCheckpoints``;
    made on ``start`` because aiokafka needs the running event loop."""

    def __init__(self, settings: KafkaSettings, group: str, persistence: StatePersistence) -> None:
        self._settings, self._group = settings, group
        self._listener = ResumeFromCheckpoints(persistence)
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=self._settings.bootstrap_servers, group_id=self._group,
                                    client_id=self._group, enable_auto_commit=False, auto_offset_reset="earliest")
        consumer.subscribe([DRIFT_INPUTS], listener=self._listener)
        self._listener.consumer = self._consumer = consumer
        await consumer.start()

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    async def getmany(self, *partitions: TopicPartition, timeout_ms: int = 0,
                      max_records: int | None = None) -> dict[TopicPartition, list[ConsumerRecord]]:
        assert self._consumer is not None
        return await self._consumer.getmany(*partitions, timeout_ms=timeout_ms, max_records=max_records)

    async def commit(self, offsets: dict[TopicPartition, int] | None = None) -> None:
        assert self._consumer is not None
        await self._consumer.commit(offsets)


def route_consumer(settings: KafkaSettings, group: str, router: Router, dead_letters: EventProducer, *,
                   max_records: int, driver: ConsumerDriver | None = None) -> EventConsumer:
    return EventConsumer(settings, group_id=group, topics=[PREDICTIONS, LABELED], types=TYPES,
                         dead_letters=dead_letters, batch_handler=router.on_batch, driver=driver,
                         max_records=max_records)


def detect_consumer(settings: KafkaSettings, group: str, detection: Detection, dead_letters: EventProducer, *,
                    max_records: int, driver: ConsumerDriver | None = None) -> EventConsumer:
    return EventConsumer(settings, group_id=group, topics=[DRIFT_INPUTS], types=DETECT_TYPES, dead_letters=dead_letters,
                         batch_handler=detection.on_batch, driver=driver, max_records=max_records)
