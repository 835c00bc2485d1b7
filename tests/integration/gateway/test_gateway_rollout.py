"""Rollouts on the real Triton, driven by DeploymentChanged on the real Kafka: shadow
never changes a response, a promotion under load gives zero errors and the old
version answers until the new one is READY, a broken artifact leaves the serving
version alone, and with the champion's Triton side broken the fallback answers, until
the gateway has loaded the champion into Triton again; a gateway started after a promotion
falls back to the registry's fallback version."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc.aio as grpc_client
import tritonclient.http.aio as http_client
from loopline.common.v1 import common_pb2
from loopline.events.v1 import models_pb2
from loopline_cli.stack import TritonEndpoints
from loopline_core.kafka.producer import EventProducer
from loopline_core.kafka.topics import MODELS
from loopline_core.settings import KafkaSettings

from gateway_it import FEATURES, FakeRegistry, gateway_settings, read_predictions, registry_server, running_gateway, \
    scripted_model

pytestmark = pytest.mark.integration
CHAMPION, SHADOW = common_pb2.VARIANT_CHAMPION, common_pb2.VARIANT_SHADOW


class Load:
    """A bounded closed-loop load of ``workers`` concurrent gRPC clients; records what served each call."""

    def __init__(self, client: grpc_client.InferenceServerClient, model: str, workers: int = 4) -> None:
        self._client, self._model, self._workers = client, model, workers
        self.served: list[list[str]] = [[] for _ in range(workers)]
        self.errors: list[str] = []
        self._stop = asyncio.Event()

    async def _worker(self, index: int) -> None:
        batch = np.ones((1, FEATURES), np.float32)
        tensor = grpc_client.InferInput("features", [1, FEATURES], "FP32")
        tensor.set_data_from_numpy(batch)
        while not self._stop.is_set():
            try:
                reply = (await self._client.infer(self._model, [tensor])).get_response()
                self.served[index].append(reply.model_version)
            except Exception as exc:  # noqa: BLE001 - every failure is recorded and asserted on
                self.errors.append(str(exc))

    async def __aenter__(self) -> Load:
        self._tasks = [asyncio.create_task(self._worker(i)) for i in range(self._workers)]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    def count(self) -> int:
        return sum(len(s) for s in self.served)


async def _until(condition: object, timeout_s: float = 90.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def _gateway(registry: FakeRegistry, triton: TritonEndpoints, kafka_bootstrap: str,
                   tmp_path: Path) -> AsyncIterator[tuple[Any, grpc_client.InferenceServerClient,
                                                         grpc_client.InferenceServerClient]]:
    """A gateway on ``registry``, with a gRPC client of it and one of Triton directly."""
    async with registry_server(registry) as target:
        async with running_gateway(gateway_settings(triton, kafka_bootstrap, target, tmp_path)) as gateway:
            client = grpc_client.InferenceServerClient(f"127.0.0.1:{gateway.grpc_server.port}")
            direct = grpc_client.InferenceServerClient(triton.grpc_url)
            try:
                yield gateway, client, direct
            finally:
                await client.close()
                await direct.close()


async def test_shadow_promotion_broken_artifact_and_fallback(triton: TritonEndpoints, kafka_bootstrap: str,
                                                            tmp_path: Path) -> None:
    model = f"roll-{uuid.uuid4().hex[:6]}"
    registry = FakeRegistry()
    for version, seed in ((1, 21), (2, 22)):
        registry.add_version(model, version, scripted_model(seed)[0])
    registry.add_version(model, 3, b"this is not a TorchScript archive")
    registry.deploy(model, [(1, 1.0, CHAMPION)], shadows=(2,))
    events = EventProducer(KafkaSettings(bootstrap_servers=kafka_bootstrap), service="gateway-it")
    await events.start()

    async def changed(revision: int) -> None:
        await events.send(MODELS, model, models_pb2.DeploymentChanged(model=model, revision=revision))

    async with _gateway(registry, triton, kafka_bootstrap, tmp_path) as (gateway, client, direct):
        # Shadow: the answer is v1's, byte for byte; v2's outputs are only logged.
        x = np.random.default_rng(1).normal(size=(1, FEATURES)).astype(np.float32)
        tensor = grpc_client.InferInput("features", [1, FEATURES], "FP32")
        tensor.set_data_from_numpy(x)
        v1 = (await direct.infer(f"{model}.v1", [tensor])).as_numpy("probabilities")
        v2 = (await direct.infer(f"{model}.v2", [tensor])).as_numpy("probabilities")
        assert not np.allclose(v1, v2)
        ids = []
        for _ in range(5):
            reply = await client.infer(model, [tensor])
            np.testing.assert_array_equal(reply.as_numpy("probabilities"), v1)
            assert reply.get_response().model_version == "1"
            ids.append(reply.get_response().parameters["prediction_id"].string_param)

        # Promotion under load: zero errors; v1 answers until v2 is READY, then only v2.
        async with Load(client, model) as load:
            await _until(lambda: load.count() >= 40)
            revision = registry.deploy(model, [(2, 1.0, CHAMPION)])
            await changed(revision)
            await _until(lambda: gateway.table.get(model).revision == revision)
            switched_at = load.count()
            await _until(lambda: load.count() >= switched_at + 40)
        assert load.errors == []
        for served in load.served:
            first_v2 = served.index("2")
            assert set(served[:first_v2]) == {"1"} and set(served[first_v2:]) == {"2"}
        assert gateway.table.get(model).fallback.version == 1

        # A broken artifact: the load fails, v2 keeps serving, nothing fails.
        async with Load(client, model) as load:
            revision = registry.deploy(model, [(3, 1.0, CHAMPION)])
            await changed(revision)
            await _until(lambda: model in gateway.reconciler.errors)
            at = load.count()
            await _until(lambda: load.count() >= at + 20)
        assert load.errors == [] and {v for s in load.served for v in s} == {"2"}
        assert gateway.table.get(model).targets[0].version == 2

        # Triton's side of the champion broken: the previous champion answers and says so.
        admin = http_client.InferenceServerClient(triton.http_url)
        await admin.unload_model(f"{model}.v2")
        await admin.close()
        # readiness says so: v2 not ready, the model ready (its fallback answers)
        assert not await client.is_model_ready(model, "2") and await client.is_model_ready(model)
        reply = (await client.infer(model, [tensor])).get_response()
        assert reply.model_version == "1" and reply.parameters["fallback"].bool_param
        assert "v2 failed" in reply.parameters["fallback_reason"].string_param
        np.testing.assert_array_equal(np.frombuffer(reply.raw_output_contents[0], np.float32), v1[0])

        # Triton lost v2 (as after a restart): the failed call made the gateway load it again.
        async with asyncio.timeout(90):
            while (await client.infer(model, [tensor])).get_response().model_version != "2":
                await asyncio.sleep(0.2)
        assert await direct.is_model_ready(f"{model}.v2")
    await events.stop()
    logged = await read_predictions(kafka_bootstrap, set(ids))
    for prediction_id in ids:
        variants = {(e.version, e.variant) for e in logged[prediction_id]}
        assert variants == {(1, CHAMPION), (2, SHADOW)}


async def test_a_gateway_started_after_a_promotion_falls_back_to_the_registrys_fallback(
        triton: TritonEndpoints, kafka_bootstrap: str, tmp_path: Path) -> None:
    """The previous champion is the registry's, not only what a gateway saw change: one started
    (or restarted) after the promotion has no earlier route of its own to remember it by."""
    model = f"fresh-{uuid.uuid4().hex[:6]}"
    registry = FakeRegistry()
    for version, seed in ((1, 31), (2, 32)):
        registry.add_version(model, version, scripted_model(seed)[0])
    registry.deploy(model, [(2, 1.0, CHAMPION)], fallback=1)
    async with _gateway(registry, triton, kafka_bootstrap, tmp_path) as (gateway, client, direct):
        assert gateway.table.get(model).fallback.version == 1
        assert await direct.is_model_ready(f"{model}.v1")  # loaded to answer for v2
        tensor = grpc_client.InferInput("features", [1, FEATURES], "FP32")
        tensor.set_data_from_numpy(np.ones((1, FEATURES), np.float32))
        v1 = (await direct.infer(f"{model}.v1", [tensor])).as_numpy("probabilities")
        assert (await client.infer(model, [tensor])).get_response().model_version == "2"
        admin = http_client.InferenceServerClient(triton.http_url)
        await admin.unload_model(f"{model}.v2")
        await admin.close()
        reply = (await client.infer(model, [tensor])).get_response()
        assert reply.model_version == "1" and reply.parameters["fallback"].bool_param
        np.testing.assert_array_equal(np.frombuffer(reply.raw_output_contents[0], np.float32), v1[0])
