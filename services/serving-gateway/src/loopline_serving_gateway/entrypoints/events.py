"""Kafka edge: model and deployment events re-read that model's deployment from the registry.

The events are triggers, not the state: the registry holds the desired state, so a
missed or repeated event is harmless (the periodic resync catches up). Every
gateway process must see every event, so each reads all partitions itself from
the end of the topic (the start-up sync has read the state before it).
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from loopline.events.v1 import models_pb2

from loopline_core.kafka.consumer import EventConsumer
from loopline_core.kafka.handlers import Delivery, EventRouter
from loopline_core.kafka.producer import EventProducer
from loopline_core.kafka.topics import MODELS, all_topics
from loopline_core.settings import KafkaSettings

from loopline_serving_gateway.handlers.reconciler import Reconciler


class FromLatest:
    """Reads every partition of loopline.models.v1 from its end, with no consumer group.

    Every gateway process must see every event, and offsets need not survive a
    restart (the start-up sync reads the whole state), so there is nothing to commit.
    """

    def __init__(self, settings: KafkaSettings) -> None:
        self._settings = settings
        self._consumer: AIOKafkaConsumer | None = None
        self.started = asyncio.Event()

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=self._settings.bootstrap_servers, enable_auto_commit=False,
                                    client_id=f"serving-gateway-{socket.gethostname()}-{os.getpid()}")
        await consumer.start()
        partitions = next(spec.partitions for spec in all_topics() if spec.name == MODELS)
        assigned = [TopicPartition(MODELS, p) for p in range(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_end(*assigned)
        for tp in assigned:
            await consumer.position(tp)
        self._consumer = consumer
        self.started.set()

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    async def getmany(self, *partitions: Any, timeout_ms: int = 0, max_records: int | None = None) -> Any:
        assert self._consumer is not None
        return await self._consumer.getmany(*partitions, timeout_ms=timeout_ms, max_records=max_records)

    async def commit(self, offsets: Any = None) -> None:
        return None


def model_events_consumer(settings: KafkaSettings, reconciler: Reconciler, dead_letters: EventProducer,
                          driver: object | None = None) -> EventConsumer:
    async def on_model_event(delivery: Delivery[models_pb2.DeploymentChanged]) -> None:
        await reconciler.sync_model(delivery.event.data.model)

    router = (EventRouter()
              .on(models_pb2.DeploymentChanged, on_model_event)
              .on(models_pb2.ModelVersionPromoted, on_model_event)  # type: ignore[arg-type]
              .on(models_pb2.RolledBack, on_model_event)  # type: ignore[arg-type]
              .ignore(models_pb2.ModelVersionRegistered))  # a version serves only once deployed
    group = f"serving-gateway-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    driver = driver or FromLatest(settings)
    return EventConsumer(settings, group_id=group, topics=[MODELS], types=router.types, dead_letters=dead_letters,
                         handler=router, driver=driver)  # type: ignore[arg-type]
