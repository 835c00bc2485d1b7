"""Composition root of the feedback-collector service: the only place that picks adapters."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta
from importlib import resources

from loopline.events.v1 import predictions_pb2
from loopline_core.components import PostgresResource
from loopline_core.db.migrations import load_folder
from loopline_core.kafka.cloudevents import EventTypes
from loopline_core.kafka.consumer import EventConsumer
from loopline_core.kafka.producer import EventProducer
from loopline_core.kafka.topics import FEEDBACK, PREDICTIONS
from loopline_core.servers.assemble import assemble
from loopline_core.servers.host import Background, Component, ServiceHost

from loopline_feedback_collector.entrypoints.grpc import SERVICE_NAME, registration
from loopline_feedback_collector.entrypoints.http import router
from loopline_feedback_collector.joiner import Joiner
from loopline_feedback_collector.service import FeedbackService
from loopline_feedback_collector.settings import FeedbackSettings

log = logging.getLogger(__name__)


@dataclass
class Collector:
    joiner: Joiner
    service: FeedbackService
    consumer: EventConsumer
    components: list[Component]
    background: list[Background]


def wire(settings: FeedbackSettings) -> Collector:
    migrations = load_folder("feedback-collector", resources.files("loopline_feedback_collector") / "migrations")
    postgres = PostgresResource(settings.postgres, settings.postgres_schema, migrations)
    producer = EventProducer(settings.kafka, service=settings.service_name)
    pool = lambda: postgres.pool  # noqa: E731 - the pool exists once the component has started
    joiner = Joiner(pool, producer)
    service = FeedbackService(pool, producer, max_batch=settings.max_batch)
    consumer = EventConsumer(settings.kafka, group_id=settings.join.group_id, topics=[PREDICTIONS, FEEDBACK],
                             types=EventTypes(predictions_pb2.PredictionLogged, predictions_pb2.FeedbackReceived),
                             dead_letters=producer, batch_handler=joiner.handle_batch,
                             max_records=settings.join.max_records,
                             concurrent_partitions=settings.join.concurrent_partitions,
                             fetch_min_bytes=settings.join.fetch_min_bytes,
                             fetch_max_wait_ms=settings.join.fetch_max_wait_ms, co_partitioned=True,
                             poll_top_up_ms=settings.join.poll_top_up_ms)
    window = timedelta(seconds=settings.join.window_s)

    async def sweep() -> None:
        while True:
            await asyncio.sleep(settings.join.expiry_interval_s)
            try:
                counts = await joiner.expire(window)
                if any(counts.values()):
                    log.info("expired unmatched items: %s", counts)
            except Exception:  # noqa: BLE001 - the sweep retries on its next tick
                log.exception("expiry sweep failed")

    async def join() -> None:
        try:
            await consumer.run()
        finally:
            await joiner.release_connections()

    components = [postgres.component(), Component("kafka-producer", producer.start, producer.stop)]
    background = [Background("joiner", join), Background("expiry", sweep)]
    return Collector(joiner, service, consumer, components, background)


def build(settings: FeedbackSettings) -> ServiceHost:
    collector = wire(settings)
    return assemble(settings, components=collector.components, background=collector.background,
                    routers=[router(collector.service)], metrics=collector.joiner.metrics.registry,
                    grpc_services=[(SERVICE_NAME, registration(collector.service))])


