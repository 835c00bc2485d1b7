"""``loopline demo``: bring the whole platform up and show it working end to end.

For now (walking skeleton) it starts the stack, shows every part healthy, sends one
event round trip through Kafka and one inference through Triton, and says how to
stop. The closed-loop scenario grows here (issue 7).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from aiokafka import AIOKafkaConsumer

from loopline.events.v1 import predictions_pb2
from loopline_cli.stack.config import StackConfig
from loopline_cli.stack.layout import resolve_run_dir
from loopline_cli.stack.stack import Stack
from loopline_core.kafka import cloudevents, topics
from loopline_core.kafka.producer import EventProducer
from loopline_core.settings import KafkaSettings


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    demo = commands.add_parser("demo", help="start the platform locally and show it working")
    demo.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    began = time.monotonic()
    stack = Stack(StackConfig.resolve(resolve_run_dir(args.run_dir)))
    print(f"demo: bringing up the platform in {stack.config.run_dir}", flush=True)
    results = stack.up("all", on_result=lambda r: print(
        f"  {r.name:<20} {r.outcome:<8} {f'{r.seconds:.1f}s' if r.seconds is not None else ''}", flush=True))
    failed = [r for r in results if r.error is not None]
    for result in failed:
        print(f"demo: {result.error}")
    if failed:
        return 1
    rows = stack.status()
    for row in rows:
        print(f"  {row.name:<20} {'healthy' if row.healthy else 'NOT HEALTHY':<12} pid {row.pid}")
    if not all(row.healthy for row in rows):
        return 1
    print(f"demo: every component healthy after {time.monotonic() - began:.1f}s")
    event_id, elapsed_ms = asyncio.run(kafka_round_trip(stack.config.kafka_bootstrap))
    print(f"demo: Kafka round trip of event {event_id} on {topics.PREDICTIONS} in {elapsed_ms:.0f} ms")
    outputs = triton_inference(stack.config)
    print(f"demo: Triton inference through model 'demo-skeleton': {np.round(outputs[0], 3).tolist()}")
    print(f"demo: done in {time.monotonic() - began:.1f}s; stop everything with `make down`")
    return 0


async def kafka_round_trip(bootstrap: str) -> tuple[str, float]:
    settings = KafkaSettings(bootstrap_servers=bootstrap)
    producer = EventProducer(settings, service="demo")
    consumer = AIOKafkaConsumer(topics.PREDICTIONS, bootstrap_servers=bootstrap, group_id=f"demo-{uuid.uuid4()}",
                                auto_offset_reset="latest", enable_auto_commit=False)
    await consumer.start()
    await producer.start()
    try:
        deadline = time.monotonic() + 60
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=100)
            if time.monotonic() > deadline:
                raise TimeoutError(f"no partition of {topics.PREDICTIONS} was assigned within 60s")
        for partition in consumer.assignment():
            await consumer.position(partition)  # pin "latest" before producing
        started = time.monotonic()
        prediction = predictions_pb2.PredictionLogged(prediction_id=str(uuid.uuid4()), model="demo-skeleton", version=1)
        event_id = await producer.send(topics.PREDICTIONS, prediction.prediction_id, prediction)
        types = cloudevents.EventTypes(predictions_pb2.PredictionLogged)
        while time.monotonic() < deadline + 30:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    event = cloudevents.decode(record.value, record.headers, types)
                    if event.id == event_id:
                        return event_id, (time.monotonic() - started) * 1000
        raise TimeoutError(f"event {event_id} did not come back from {topics.PREDICTIONS}")
    finally:
        await producer.stop()
        await consumer.stop()


def triton_inference(config: StackConfig) -> np.ndarray:
    import torch
    import tritonclient.grpc as triton_grpc
    import tritonclient.http as triton_http

    from loopline_core.triton.repository import TensorConfig, render_config, write_entry

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Softmax(dim=1)).eval()
    with tempfile.TemporaryDirectory() as tmp:
        artifact = Path(tmp) / "model.pt"
        torch.jit.script(model).save(str(artifact))
        config_text = render_config("demo-skeleton", [TensorConfig("INPUT__0", "FP32", (4,))],
                                    [TensorConfig("OUTPUT__0", "FP32", (3,))])
        write_entry(config.model_repository, "demo-skeleton", 1, artifact, config_text)
    triton_http.InferenceServerClient(config.triton_http_url).load_model("demo-skeleton")
    batch = np.ones((1, 4), dtype=np.float32)
    request = triton_grpc.InferInput("INPUT__0", list(batch.shape), "FP32")
    request.set_data_from_numpy(batch)
    result = triton_grpc.InferenceServerClient(config.triton_grpc_url).infer("demo-skeleton", [request])
    return result.as_numpy("OUTPUT__0")
