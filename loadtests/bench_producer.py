"""Producer benchmark: CPU per record of ``EventProducer.send_batch`` on the real broker,
aiokafka's record-batch interface (what send_batch uses) against one ``send()`` per record
(the baseline, the same producer code with the batch interface hidden), in one run.

Kafka is started through the local-stack API. Each round sends BENCH_PRODUCER_BATCHES
batches of BENCH_PRODUCER_RECORDS PredictionLogged events (new prediction ids, as the
gateway's log sends them) through each path, alternating; the medians over
BENCH_PRODUCER_ROUNDS rounds and their ratio are printed and written to
$BENCH_OUT/producer.json (default .run/bench/). CPU is this process's (the producer's
encoding, partitioning, batching and its network task), read with time.process_time.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from loopline.events.v1.predictions_pb2 import PredictionLogged

RECORDS = int(os.environ.get("BENCH_PRODUCER_RECORDS", "500"))
BATCHES = int(os.environ.get("BENCH_PRODUCER_BATCHES", "10"))
ROUNDS = int(os.environ.get("BENCH_PRODUCER_ROUNDS", "5"))


class PerRecord:
    """The aiokafka producer without its batch interface: send_batch falls back to send()."""

    def __init__(self, driver: Any) -> None:
        self._driver = driver

    async def start(self) -> None:
        await self._driver.start()

    async def stop(self) -> None:
        await self._driver.stop()

    async def send(self, *args: Any, **kwargs: Any) -> Any:
        return await self._driver.send(*args, **kwargs)


def _message(n: int) -> PredictionLogged:
    message = PredictionLogged(prediction_id=str(uuid.uuid4()), model="bench", version=1, latency_us=n)
    message.inputs.add(name="features", datatype="FP32", shape=[1, 16], fp_contents=[0.5] * 16)
    message.outputs.add(name="probabilities", datatype="FP32", shape=[1, 4], fp_contents=[0.25] * 4)
    return message


async def _round(producer: Any, topic: str) -> float:
    from loopline_core.kafka.producer import Outgoing

    batches = [[Outgoing(m.prediction_id, m) for m in (_message(n) for n in range(RECORDS))] for _ in range(BATCHES)]
    began = time.process_time()
    for items in batches:
        await producer.send_batch(topic, items)
    return (time.process_time() - began) / (RECORDS * BATCHES) * 1e6


async def _run(bootstrap: str) -> dict[str, object]:
    from loopline_core.kafka.producer import EventProducer, kafka_producer
    from loopline_core.kafka.topics import PREDICTIONS
    from loopline_core.settings import KafkaSettings

    settings = KafkaSettings(bootstrap_servers=bootstrap)
    batched = EventProducer(settings, service="bench-producer")
    per_record = EventProducer(settings, service="bench-producer",
                               driver=PerRecord(kafka_producer(settings, "bench-producer-per-record")))
    await batched.start()
    await per_record.start()
    try:
        for producer in (batched, per_record):  # warm-up: metadata, connections, the broker's JIT
            for _ in range(3):
                await _round(producer, PREDICTIONS)
        figures: dict[str, list[float]] = {"batch_interface": [], "per_record_send": []}
        for index in range(ROUNDS):
            order = [("batch_interface", batched), ("per_record_send", per_record)]
            for name, producer in order if index % 2 == 0 else order[::-1]:
                figures[name].append(round(await _round(producer, PREDICTIONS), 1))
    finally:
        await batched.stop()
        await per_record.stop()
    medians = {name: statistics.median(values) for name, values in figures.items()}
    return {"benchmark": "producer", "records_per_batch": RECORDS, "batches_per_round": BATCHES,
            "rounds": ROUNDS, "cpu_us_per_record": figures, "median_cpu_us_per_record": medians,
            "batch_over_per_record": round(medians["batch_interface"] / medians["per_record_send"], 3),
            "load_average_after": [round(v, 2) for v in os.getloadavg()]}


def main() -> int:
    from loopline_cli.stack import Stack, StackConfig

    out = Path(os.environ.get("BENCH_OUT", ".run/bench"))
    with tempfile.TemporaryDirectory(prefix="bench-producer-") as scratch:
        stack = Stack(StackConfig.for_tests(Path(scratch) / "stack"))
        try:
            stack.ensure("kafka")
            report = asyncio.run(_run(stack.config.kafka_bootstrap))
        finally:
            stack.down()
    print(json.dumps(report), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "producer.json").write_text(json.dumps(report, indent=2))
    print(f"wrote {out / 'producer.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
