"""Kafka stopped during a load: every inference still succeeds, the prediction log's
bounded buffer overflows and counts its drops, and once Kafka is back the log
catches up, so that what is on the topic plus what was counted as dropped is
exactly what was served.

The session's Kafka is shared by every other test, so this one starts a broker of
its own (the stack's Kafka part, in its own run directory), stops it mid-load and
starts it again on the same data directory and ports.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc.aio as grpc_client
from loopline.common.v1 import common_pb2
from loopline.events.v1 import predictions_pb2
from loopline_cli.stack import Stack, StackConfig, StartFailed, TritonEndpoints
from loopline_core.kafka.topics import PREDICTIONS

from gateway_it import FEATURES, FakeRegistry, gateway_settings, read_topic, registry_server, running_gateway, \
    scripted_model

pytestmark = pytest.mark.integration
CHAMPION = common_pb2.VARIANT_CHAMPION
#: Small enough that a few seconds of load with Kafka down overflows it.
BUFFER_EVENTS = 400
BATCH_EVENTS = 50
GRACE_S = 2.0
#: Predictions served after Kafka stops for good, just before the gateway stops.
LAST_WORDS = 20


def _features() -> grpc_client.InferInput:
    tensor = grpc_client.InferInput("features", [1, FEATURES], "FP32")
    tensor.set_data_from_numpy(np.random.default_rng().normal(size=(1, FEATURES)).astype(np.float32))
    return tensor


class Load:
    """``workers`` concurrent gRPC clients, each pausing a little between calls; keeps
    every prediction id served and every failure, with the phase it happened in."""

    def __init__(self, client: grpc_client.InferenceServerClient, model: str, workers: int = 3,
                 pause_s: float = 0.004) -> None:
        self._client, self._model, self._workers, self._pause_s = client, model, workers, pause_s
        self.phase = "kafka up"
        self.served: dict[str, list[str]] = defaultdict(list)
        self.errors: list[tuple[str, str]] = []
        self._stop = asyncio.Event()

    async def _worker(self) -> None:
        tensor = _features()
        while not self._stop.is_set():
            phase = self.phase
            try:
                async with asyncio.timeout(5):
                    reply = (await self._client.infer(self._model, [tensor])).get_response()
                self.served[phase].append(reply.parameters["prediction_id"].string_param)
            except Exception as exc:  # noqa: BLE001 - every failure is recorded and asserted on
                self.errors.append((phase, f"{type(exc).__name__}: {exc}"))
            await asyncio.sleep(self._pause_s)

    async def __aenter__(self) -> Load:
        self._tasks = [asyncio.create_task(self._worker()) for _ in range(self._workers)]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    def count(self, phase: str | None = None) -> int:
        return sum(len(ids) for name, ids in self.served.items() if phase in (None, name))

    def ids(self) -> list[str]:
        return [pid for ids in self.served.values() for pid in ids]


async def _until(condition: Callable[[], bool], timeout_s: float, what: str | Callable[[], str]) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            while not condition():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"not within {timeout_s:.0f}s: {what if isinstance(what, str) else what()}") from None


async def _kafka(stack: Stack) -> None:
    try:
        await asyncio.to_thread(stack.ensure, "kafka")  # creates the catalogue's topics once ready
    except StartFailed as failure:
        pytest.fail(failure.detailed(), pytrace=False)


async def test_kafka_outage_keeps_serving_drops_counted_and_log_catches_up(triton: TritonEndpoints,
                                                                          tmp_path: Path) -> None:
    stack = Stack(StackConfig.for_tests(tmp_path / "own-stack"))
    try:
        await _kafka(stack)
        bootstrap = stack.config.kafka_bootstrap
        model = f"outage-{uuid.uuid4().hex[:6]}"
        registry = FakeRegistry()
        registry.add_version(model, 1, scripted_model(31)[0])
        registry.deploy(model, [(1, 1.0, CHAMPION)])
        async with registry_server(registry) as target:
            settings = gateway_settings(triton, bootstrap, target, tmp_path, shutdown_grace_s=GRACE_S, prediction_log={
                "buffer_events": BUFFER_EVENTS, "batch_events": BATCH_EVENTS, "flush_interval_ms": 20,
                "retry_backoff_ms": 200})
            async with running_gateway(settings) as gateway:
                plog = gateway.prediction_log
                assert plog is not None
                client = grpc_client.InferenceServerClient(f"127.0.0.1:{gateway.grpc_server.port}")
                try:
                    async with Load(client, model) as load:
                        await _until(lambda: plog.sent >= 100, 30, "100 predictions logged with Kafka up")
                        assert plog.dropped == 0, "the buffer overflowed with Kafka up"

                        load.phase = "kafka stopping"
                        await asyncio.to_thread(stack.down, "kafka")
                        load.phase = "kafka down"
                        down_since = time.monotonic()
                        await _until(lambda: plog.dropped > 0 and time.monotonic() - down_since > 3, 30,
                                     "the bounded buffer overflows with Kafka down")

                        load.phase = "kafka starting"
                        await _kafka(stack)
                        load.phase = "kafka back"
                        await _until(lambda: plog.buffered < BATCH_EVENTS, 30, "the backlog drains with Kafka back")
                        load.phase = "caught up"
                        await _until(lambda: load.count("caught up") >= 100, 30, "100 answers once caught up")
                    served = load.ids()
                    # Everything served is either acknowledged by Kafka or counted as dropped.
                    await _until(lambda: plog.sent + plog.dropped >= len(served) and plog.buffered == 0, 60,
                                 lambda: f"the log catches up ({plog.sent} sent + {plog.dropped} dropped "
                                         f"of {len(served)} served)")
                    dropped = plog.dropped
                    dropped_metric = gateway.metrics.registry.get_sample_value("gateway_prediction_log_dropped_total")
                    records = await read_topic(bootstrap, PREDICTIONS)

                    # Kafka down again, then the gateway stops: it exits within its grace period
                    # and counts what it could not hand over as dropped.
                    await asyncio.to_thread(stack.down, "kafka")
                    for _ in range(LAST_WORDS):
                        await client.infer(model, [_features()])
                finally:
                    await client.close()
                stopping_since = time.monotonic()
            stopped_in = time.monotonic() - stopping_since
            # The producer's stop gave up on Kafka and tore aiokafka down: no sender task lingers.
            lingering = [t for t in asyncio.all_tasks() if "_sender_routine" in repr(t.get_coro())]
    finally:
        await asyncio.to_thread(stack.down)

    # Inference never failed, whatever Kafka was doing, and the phases all saw traffic.
    assert load.errors == [], load.errors[:5]
    assert all(load.count(phase) > 0 for phase in ("kafka up", "kafka down", "kafka starting", "caught up")), \
        {phase: len(ids) for phase, ids in load.served.items()}
    assert len(set(served)) == len(served)

    # The topic after dedup by ce_id: one event per logged prediction, only predictions that were served.
    by_event_id: dict[str, str] = {}
    for record in records:
        headers = dict(record.headers)
        event_id, key = headers["ce_id"].decode(), record.key.decode()
        assert predictions_pb2.PredictionLogged.FromString(record.value).prediction_id == key
        assert by_event_id.setdefault(event_id, key) == key
    per_prediction = Counter(by_event_id.values())
    assert [pid for pid, n in per_prediction.items() if n > 1] == []
    logged = set(per_prediction)
    assert logged <= set(served)

    # The buffer really overflowed, the counter is the metric, and logged + dropped is everything served.
    assert dropped > 0
    assert dropped_metric == dropped
    assert len(logged) + dropped == len(served)
    # Once caught up, nothing more is dropped: every prediction served since is on the topic.
    assert set(load.served["caught up"]) <= logged

    # Stopping with Kafka down is bounded, and what was never acknowledged is counted.
    assert stopped_in < GRACE_S + 5, f"the gateway took {stopped_in:.1f}s to stop with Kafka down"
    assert lingering == [], lingering
    assert plog.dropped == dropped + LAST_WORDS
    assert gateway.metrics.registry.get_sample_value("gateway_prediction_log_dropped_total") == plog.dropped
