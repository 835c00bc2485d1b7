"""Warming a fresh broker before anything is measured.

Each benchmark run starts its own Kafka, and a young JVM needs far more produce requests than
the paths' warm-up sends to compile its produce path: measured on this 2-core machine, ~10
batches a second cost the broker 12, then 10, then 6 ms of CPU each over three 15 s phases.
Until then the broker takes CPU from whatever shares its cores, the gateway phases (the only
ones that log) most of all. This sends PredictionLogged batches, as the gateway's log does,
for a while first.
"""

from __future__ import annotations

import asyncio

from loopline.events.v1.predictions_pb2 import PredictionLogged
from loopline_core.kafka.producer import EventProducer, Outgoing
from loopline_core.kafka.topics import PREDICTIONS
from loopline_core.settings import KafkaSettings

#: Events per batch: about what a busy gateway's log hands over at a time in a few milliseconds.
BATCH = 20


async def warm_kafka(bootstrap: str, seconds: float) -> int:
    """Send batches of PredictionLogged (model ``bench-warm-up``) for ``seconds``, one at a time,
    each waiting for its acknowledgement; return how many events were sent."""
    if seconds <= 0:
        return 0
    producer = EventProducer(KafkaSettings(bootstrap_servers=bootstrap), service="bench-warm-up")
    await producer.start()
    loop = asyncio.get_running_loop()
    event = PredictionLogged(model="bench-warm-up", version=1, variant=1, triton_model="bench-warm-up.v1",
                             triton_version=1, latency_us=700)
    event.inputs.add(name="features", datatype="FP32", shape=[1, 16]).fp_contents.extend([0.5] * 16)
    event.outputs.add(name="probabilities", datatype="FP32", shape=[1, 3]).fp_contents.extend([0.2, 0.3, 0.5])
    sent = 0
    try:
        deadline = loop.time() + seconds
        while loop.time() < deadline:
            await producer.send_batch(PREDICTIONS, [Outgoing(f"warm-up-{sent + n}", event) for n in range(BATCH)])
            sent += BATCH
    finally:
        await producer.stop()
    return sent
