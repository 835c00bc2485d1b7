"""Composition root of the trainer service: the only place that picks adapters.

``wire`` builds the trainer and its components from settings, with any port
replaceable by a fake (tests); ``serve`` puts them in a ServiceHost with the gRPC
edge and the RetrainRequested consumer; ``build`` does both.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

from loopline_core.components import PostgresResource
from loopline_core.db.migrations import load_folder
from loopline_core.kafka.consumer import ConsumerDriver, EventConsumer
from loopline_core.kafka.producer import EventProducer
from loopline_core.kafka.topics import RETRAIN
from loopline_core.servers.assemble import assemble
from loopline_core.servers.host import Background, Component, ServiceHost

from loopline_trainer.adapters.channels import TracedChannel
from loopline_trainer.adapters.events import KafkaEvents
from loopline_trainer.adapters.feedback import GrpcFeedback
from loopline_trainer.adapters.registry import GrpcRegistry
from loopline_trainer.adapters.runs import MemoryRunStore, PostgresRunStore
from loopline_trainer.entrypoints.grpc import SERVICE_NAME, registration
from loopline_trainer.entrypoints.kafka import router
from loopline_trainer.service.pipeline import Deps
from loopline_trainer.service.ports import Events, Feedback, Registry, RunStore
from loopline_trainer.service.runner import Trainer
from loopline_trainer.settings import TrainerSettings


@dataclass
class Wired:
    trainer: Trainer
    consumer: EventConsumer
    components: list[Component]
    background: list[Background]


def wire(settings: TrainerSettings, *, registry: Registry | None = None, feedback: Feedback | None = None,
         store: RunStore | None = None, producer: EventProducer | None = None, events: Events | None = None,
         consumer_driver: ConsumerDriver | None = None) -> Wired:
    components: list[Component] = []
    if store is None:
        if settings.backend == "memory":
            store = MemoryRunStore()
        else:
            migrations = load_folder("trainer", resources.files("loopline_trainer") / "migrations")
            postgres = PostgresResource(settings.postgres, "trainer", migrations)
            components.append(postgres.component())
            store = PostgresRunStore(lambda: postgres.pool)
    if registry is None:
        channel = TracedChannel("registry", settings.endpoints.registry)
        components.append(channel.component())
        registry = GrpcRegistry(channel, settings.endpoints.registry_api_key)
    if feedback is None:
        channel = TracedChannel("feedback-collector", settings.endpoints.feedback_collector, required=False)
        components.append(channel.component())
        feedback = GrpcFeedback(channel)
    producer = producer or EventProducer(settings.kafka, service=settings.service_name)
    components.append(Component("kafka", producer.start, producer.stop))
    trainer = Trainer(Deps(settings, registry, feedback, events or KafkaEvents(producer)), store)
    # Last: runs a previous process left unfinished start once everything they use is up.
    components.append(Component("resume-runs", trainer.resume, trainer.stop))
    events_router = router(trainer)
    consumer = EventConsumer(settings.kafka, group_id=settings.consumer_group, topics=[RETRAIN],
                             types=events_router.types, dead_letters=producer, handler=events_router,
                             driver=consumer_driver)
    return Wired(trainer, consumer, components, [Background("retrain-consumer", consumer.run)])


def serve(settings: TrainerSettings, wired: Wired) -> ServiceHost:
    return assemble(settings, components=wired.components, background=wired.background,
                    grpc_services=[(SERVICE_NAME, registration(wired.trainer))])


def build(settings: TrainerSettings, **overrides: object) -> ServiceHost:
    return serve(settings, wire(settings, **overrides))  # type: ignore[arg-type]
