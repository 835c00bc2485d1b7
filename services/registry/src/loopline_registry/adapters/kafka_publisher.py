"""Publishes outbox records through the shared Kafka event producer (CloudEvents headers).

Each record keeps its stored event id as ce_id and is sent inside the trace of the
request that wrote it, so the "send loopline.models.v1" span joins that trace.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby

from loopline_core.kafka.producer import EventProducer, Outgoing
from opentelemetry import context, propagate

from loopline_registry.adapters.event_codec import decode
from loopline_registry.service.relay import OutboxRecord


class KafkaPublisher:
    def __init__(self, producer: EventProducer) -> None:
        self._producer = producer

    async def publish(self, records: Sequence[OutboxRecord]) -> None:
        for (topic, traceparent), group in groupby(records, key=lambda r: (r.topic, r.traceparent)):
            items = [Outgoing(r.key, decode(r.type_name, r.payload), r.subject or None, r.event_id, r.created_at)
                     for r in group]
            token = context.attach(propagate.extract({"traceparent": traceparent} if traceparent else {}))
            try:
                await self._producer.send_batch(topic, items)
            finally:
                context.detach(token)
