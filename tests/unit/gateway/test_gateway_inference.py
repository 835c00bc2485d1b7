"""The inference handler with an in-memory Triton and Kafka: canary, sticky keys,
shadow, explicit versions, fallback, and what gets logged."""

from __future__ import annotations

import asyncio
from collections import Counter

import numpy as np
import pytest
from gateway_fakes import FakeTriton, request
from loopline.events.v1 import predictions_pb2

from loopline_core.errors import InvalidArgument, Unavailable
from loopline_core.kafka.memory import InMemoryBroker
from loopline_core.kafka.producer import EventProducer
from loopline_core.kafka.topics import PREDICTIONS
from loopline_core.settings import KafkaSettings

from loopline_serving_gateway.domain.deployments import Deployment, Split, route_for
from loopline_serving_gateway.domain.routing import RoutingTable, Variant
from loopline_serving_gateway.handlers.inference import Inference
from loopline_serving_gateway.handlers.prediction_log import PredictionLog
from loopline_serving_gateway.metrics import GatewayMetrics
from loopline_serving_gateway.settings import GatewaySettings

C, K = Variant.CHAMPION, Variant.CANARY


class World:
    def __init__(self, deployment: Deployment, previous: Deployment | None = None) -> None:
        self.triton = FakeTriton()
        self.table = RoutingTable()
        if previous is not None:
            self.table.switch(route_for(previous, None, None))
        self.table.switch(route_for(deployment, self.table.find(deployment.model), None))
        self.triton.loaded = set(self.table.referenced())
        self.broker = InMemoryBroker()
        self.producer = EventProducer(KafkaSettings(), service="serving-gateway", driver=self.broker.producer())
        settings = GatewaySettings()
        self.log = PredictionLog(self.producer, settings.prediction_log)
        self.metrics = GatewayMetrics()
        self.inference = Inference(self.table, self.triton, self.log, self.metrics, settings, Counter())

    async def logged(self) -> list[predictions_pb2.PredictionLogged]:
        await self.producer.start()
        await self.log.flush()
        return [predictions_pb2.PredictionLogged.FromString(r.value) for r in self.broker.records(PREDICTIONS)]


def _out(response: object) -> np.ndarray:
    return np.frombuffer(response.raw_output_contents[0], np.float32)  # type: ignore[attr-defined]


async def test_10k_requests_split_90_10_within_3_points_and_keys_stay_put() -> None:
    world = World(Deployment("iris", 1, (Split(1, 0.9, C), Split(2, 0.1, K))))
    served = [(await world.inference.infer(request("iris"), key=f"k{i % 5000}")).version for i in range(10_000)]
    assert abs(served.count(2) / 10_000 - 0.10) <= 0.03
    assert served[:5000] == served[5000:]  # each key saw the same version both times


async def test_shadow_never_changes_the_response_and_is_logged_with_the_same_id() -> None:
    world = World(Deployment("iris", 1, (Split(1, 1.0, C),), shadow_versions=(3,)))
    answer = await world.inference.infer(request("iris"))
    np.testing.assert_array_equal(_out(answer.response), [6.0])  # 0+1+2+3 times version 1
    assert answer.response.model_version == "1"
    await asyncio.sleep(0)  # let the mirrored call run
    logged = await world.logged()
    assert {(e.prediction_id, e.version, e.variant) for e in logged} == {
        (answer.prediction_id, 1, Variant.CHAMPION), (answer.prediction_id, 3, Variant.SHADOW)}
    shadow = next(e for e in logged if e.variant == Variant.SHADOW)
    assert shadow.outputs[0].fp_contents == [18.0]


async def test_a_broken_shadow_is_counted_and_harmless() -> None:
    world = World(Deployment("iris", 1, (Split(1, 1.0, C),), shadow_versions=(3,)))
    world.triton.broken.add("iris.v3")
    answer = await world.inference.infer(request("iris"))
    await asyncio.sleep(0)
    assert answer.version == 1
    assert world.metrics.shadow_errors.labels("iris", "failed")._value.get() == 1


async def test_batches_are_logged_one_event_per_row() -> None:
    world = World(Deployment("iris", 1, (Split(1, 1.0, C),)))
    answer = await world.inference.infer(request("iris", rows=3))
    logged = sorted(await world.logged(), key=lambda e: e.prediction_id)
    assert [e.prediction_id for e in logged] == [f"{answer.prediction_id}/{r}" for r in range(3)]
    assert [list(e.inputs[0].shape) for e in logged] == [[1, 4]] * 3
    assert logged[2].inputs[0].fp_contents == [8.0, 9.0, 10.0, 11.0] and logged[2].outputs[0].fp_contents == [38.0]


async def test_when_the_champion_fails_the_previous_one_answers_and_says_so() -> None:
    world = World(Deployment("iris", 2, (Split(2, 1.0, C),)), previous=Deployment("iris", 1, (Split(1, 1.0, C),)))
    world.triton.broken.add("iris.v2")
    answer = await world.inference.infer(request("iris"))
    assert answer.version == 1 and answer.variant == Variant.FALLBACK
    assert answer.response.parameters["fallback"].bool_param
    assert "v2 failed" in answer.response.parameters["fallback_reason"].string_param
    assert (await world.logged())[0].fallback


async def test_without_a_fallback_the_failure_is_unavailable() -> None:
    world = World(Deployment("iris", 1, (Split(1, 1.0, C),)))
    world.triton.broken.add("iris.v1")
    with pytest.raises(Unavailable, match="no fallback for iris"):
        await world.inference.infer(request("iris"))


async def test_explicit_versions_and_bad_requests() -> None:
    world = World(Deployment("iris", 1, (Split(1, 0.5, C), Split(2, 0.5, K))))
    answer = await world.inference.infer(request("iris", version="2"))
    assert answer.version == 2 and answer.variant == Variant.EXPLICIT
    broken = request("iris")
    broken.raw_input_contents[0] = b"\x00" * 3
    with pytest.raises(InvalidArgument, match="3 bytes given"):
        await world.inference.infer(broken)


async def test_what_is_logged_carries_its_tensor_bytes_for_the_buffer_bound() -> None:
    world = World(Deployment("iris", 1, (Split(1, 1.0, C),), shadow_versions=(3,)))
    await world.inference.infer(request("iris", rows=2))
    await asyncio.sleep(0)  # the shadow's call
    # served and shadow: the request's FP32 [2, 4] and each one's own answer, FP32 [2, 1]
    assert [e.data_bytes for e in world.log._entries] == [32 + 8, 32 + 8]  # noqa: SLF001
