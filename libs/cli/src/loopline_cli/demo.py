"""``loopline demo``: bring the whole platform up and show the loop close by itself.

It starts the stack (every part healthy), bootstraps a model through the trainer,
then replays a stream whose concept changes unannounced through the gateway and
the feedback collector, while the platform detects, retrains, canaries and
promotes (loop/live.py); it prints the report and exits 0 only if the loop
recovered. ``--skeleton`` runs the walking-skeleton checks instead (one Kafka
round trip, one Triton inference). docs/demo.md.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from aiokafka import AIOKafkaConsumer

from loopline.events.v1 import predictions_pb2
from loopline_cli.loop.live import LoopOptions, render_report, run_loop, split_source
from loopline_cli.loop.platform import LoopError
from loopline_cli.loop.sources import SourceError
from loopline_cli.stack.config import StackConfig
from loopline_cli.stack.layout import resolve_run_dir
from loopline_cli.stack.stack import Stack
from loopline_core.kafka import cloudevents, topics
from loopline_core.kafka.producer import EventProducer
from loopline_core.settings import KafkaSettings


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    defaults = LoopOptions()
    demo = commands.add_parser("demo", help="start the platform locally and run the closed loop on a live stream")
    demo.add_argument("--source", default=defaults.source,
                      help="the stream: synthetic[:seed=7,n=..,switch=..,features=..] | jsonl:<path> | "
                           f"module:function (default {defaults.source})")
    demo.add_argument("--bootstrap", type=int, default=defaults.bootstrap, metavar="N",
                      help=f"records at the head of the stream that train the first model (default {defaults.bootstrap})")
    demo.add_argument("--change-at", type=int, default=None, metavar="INDEX",
                      help="record index where the concept changes (a synthetic source knows it: switch)")
    demo.add_argument("--rate", type=float, default=defaults.rate_hz, metavar="HZ",
                      help=f"requests per second (default {defaults.rate_hz:g})")
    demo.add_argument("--label-delay", type=float, default=defaults.label_delay_s, metavar="S",
                      help=f"seconds from a prediction to its label (default {defaults.label_delay_s:g})")
    demo.add_argument("--after", type=float, default=defaults.after_s, metavar="S",
                      help=f"seconds measured after the new champion reached 100%% (default {defaults.after_s:g})")
    demo.add_argument("--max-seconds", type=float, default=defaults.max_seconds, metavar="S",
                      help=f"the scenario ends here at the latest (default {defaults.max_seconds:g})")
    demo.add_argument("--model", default=None, help="model name (default: a fresh demo-<hex>)")
    demo.add_argument("--keep-earlier-models", action="store_true",
                      help="leave earlier runs' demo-<hex> models deployed (by default their deployments are "
                           "retired, so the gateway and Triton unload them)")
    demo.add_argument("--skeleton", action="store_true",
                      help="only the walking-skeleton checks: stack up, Kafka round trip, Triton inference")
    demo.set_defaults(run=run)


def options_from(args: argparse.Namespace) -> LoopOptions:
    return LoopOptions(source=args.source, bootstrap=args.bootstrap, change_at=args.change_at, rate_hz=args.rate,
                       label_delay_s=args.label_delay, after_s=args.after, max_seconds=args.max_seconds,
                       model=args.model, retire_earlier=not args.keep_earlier_models)


def run(args: argparse.Namespace) -> int:
    began = time.monotonic()
    options = options_from(args)
    if not args.skeleton:
        try:  # a bad source is refused before anything starts
            split_source(options)
        except SourceError as exc:
            print(f"demo: {exc}", file=sys.stderr)
            return 2
        if options.rate_hz <= 0 or options.label_delay_s < 0:
            print("demo: --rate must be positive and --label-delay >= 0", file=sys.stderr)
            return 2
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
    print(f"demo: every component healthy after {time.monotonic() - began:.1f}s", flush=True)
    if not args.skeleton:
        return closed_loop(stack, options, began)
    event_id, elapsed_ms = asyncio.run(kafka_round_trip(stack.config.kafka_bootstrap))
    print(f"demo: Kafka round trip of event {event_id} on {topics.PREDICTIONS} in {elapsed_ms:.0f} ms")
    outputs = triton_inference(stack.config)
    print(f"demo: Triton inference through model 'demo-skeleton': {np.round(outputs[0], 3).tolist()}")
    print(f"demo: done in {time.monotonic() - began:.1f}s; stop everything with `make down`")
    return 0


def closed_loop(stack: Stack, options: LoopOptions, began: float) -> int:
    try:
        result = asyncio.run(run_loop(stack.config, options, sys.stdout))
    except (LoopError, SourceError) as exc:
        print(f"demo: {exc}", file=sys.stderr)
        print(f"demo: the stack keeps running for inspection (`loopline --run-dir {stack.config.run_dir} stack logs`); "
              "stop it with `make down`", file=sys.stderr)
        return 1
    print(render_report(result, stack.config.run_dir))
    print(f"demo: done in {time.monotonic() - began:.1f}s; the stack keeps running, stop it with `make down`")
    return 0 if result.recovered else 1


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
