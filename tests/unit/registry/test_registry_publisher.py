"""Outbox records through the real event producer (on core's in-memory broker): the
stored id becomes ce_id, the payload decodes, and the send joins the request's trace."""

from __future__ import annotations

from registry_world import TRAINER, World
from loopline.events.v1 import models_pb2
from loopline_core.kafka.cloudevents import EventTypes, decode
from loopline_core.kafka.memory import InMemoryBroker
from loopline_core.kafka.producer import EventProducer
from loopline_core.kafka.topics import MODELS
from loopline_core.settings import KafkaSettings

from loopline_registry.adapters.kafka_publisher import KafkaPublisher
from loopline_registry.domain.auth import Caller
from loopline_registry.service.commands import CreateModel, PromoteModelVersion
from loopline_registry.service.relay import OutboxRelay

TYPES = EventTypes(models_pb2.ModelVersionRegistered, models_pb2.ModelVersionPromoted)
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACED = Caller(TRAINER.actor, TRAINER.role, TRACE_ID, f"00-{TRACE_ID}-00f067aa0ba902b7-01")


async def test_the_relay_publishes_cloudevents_with_the_stored_ids(world: World) -> None:
    broker = InMemoryBroker()
    producer = EventProducer(KafkaSettings(), service="registry", driver=broker.producer())
    await producer.start()
    await world.h.create_model(TRACED, CreateModel("fraud"))
    number = await world.version()
    await world.h.promote(TRACED, PromoteModelVersion("fraud", number, "champion"))
    stored = [r.event_id for r in world.registry.outbox.pending()]  # type: ignore[attr-defined]
    await OutboxRelay(world.registry.outbox, KafkaPublisher(producer)).relay_once()
    records = broker.records(MODELS)
    events = [decode(r.value, r.headers, TYPES) for r in records]
    assert [e.id for e in events] == stored
    assert [(e.source, e.subject, type(e.data).__name__) for e in events] == [
        ("/loopline/registry", "fraud/1", "ModelVersionRegistered"),
        ("/loopline/registry", "fraud/1", "ModelVersionPromoted")]
    assert {r.key for r in records} == {b"fraud"}
    promoted = dict(records[1].headers)
    assert promoted["traceparent"].decode().split("-")[1] == TRACE_ID
    assert world.registry.outbox.pending() == []  # type: ignore[attr-defined]
