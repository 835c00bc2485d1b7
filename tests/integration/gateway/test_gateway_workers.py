"""WORKERS=2 on the real Triton and Kafka: both processes serve the shared gRPC and HTTP
ports; /metrics, whichever process answers it, counts every request of both, labelled by
worker; and two promotions under load, each applied by every worker on its own, lose no
request (a version is unloaded only once no worker routes to it), and each version is
loaded into Triton once (one worker loads it, the other waits for it and finds it READY)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.grpc.aio as grpc_client
from loopline.common.v1 import common_pb2
from loopline.events.v1 import models_pb2
from loopline_cli.stack import TritonEndpoints
from loopline_core.kafka.producer import EventProducer
from loopline_core.kafka.topics import MODELS
from loopline_core.settings import KafkaSettings
from prometheus_client.parser import text_string_to_metric_families
from tritonclient.utils import InferenceServerException

from gateway_it import FEATURES, FakeRegistry, free_port, gateway_settings, registry_server, scripted_model

pytestmark = pytest.mark.integration

RUN = ("import sys; from loopline_serving_gateway.settings import GatewaySettings; "
       "from loopline_serving_gateway.workers import serve_all; "
       "sys.exit(serve_all(GatewaySettings.model_validate_json(sys.argv[1])))")


async def _infer_on_a_new_connection(target: str, model: str, batch: np.ndarray) -> str | None:
    """One call on a connection of its own (SO_REUSEPORT spreads connections, not calls):
    the version that answered, or None."""
    client = grpc_client.InferenceServerClient(target)
    try:
        tensor = grpc_client.InferInput("features", list(batch.shape), "FP32")
        tensor.set_data_from_numpy(batch)
        return (await client.infer(model, [tensor], client_timeout=10)).get_response().model_version
    except InferenceServerException:
        return None
    finally:
        await client.close()


async def _metrics(http: httpx.AsyncClient) -> str:
    try:
        return (await http.get("/metrics")).text
    except httpx.TransportError:
        return ""  # not listening yet


async def _rest_on_a_new_connection(base: str, model: str, batch: np.ndarray) -> str | None:
    body = {"inputs": [{"name": "features", "datatype": "FP32", "shape": list(batch.shape),
                        "data": batch.ravel().tolist()}]}
    async with httpx.AsyncClient(base_url=base) as client:
        try:
            answer = await client.post(f"/v2/models/{model}/infer", json=body, timeout=10)
        except httpx.TransportError:
            return None
    return answer.headers["x-model-version"] if answer.status_code == 200 else None


def _requests_by_worker(text: str, model: str, protocol: str = "grpc") -> dict[str, float]:
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "gateway_requests_total" and (labels.get("model"), labels.get("protocol")) == (
                    model, protocol):
                found[labels["worker"]] = found.get(labels["worker"], 0.0) + sample.value
    return found


async def _promotions_under_load(registry: FakeRegistry, model: str, kafka_bootstrap: str, gateway: str, base: str,
                                 batch: np.ndarray) -> list[str | None]:
    """v1 -> v2 -> v3 announced on loopline.models.v1 while gRPC and REST calls, each on a new
    connection, keep going; each promotion waits until 30 answers in a row come from the new
    version (both workers switched). The versions that answered, in order (None: a failure)."""
    served: list[str | None] = []
    stop = asyncio.Event()

    async def load(call: Callable[[], Awaitable[str | None]]) -> None:
        while not stop.is_set():
            served.append(await call())

    events = EventProducer(KafkaSettings(bootstrap_servers=kafka_bootstrap), service="gateway-it")
    await events.start()
    loaders = [asyncio.create_task(load(lambda: _infer_on_a_new_connection(gateway, model, batch))) for _ in range(2)]
    loaders += [asyncio.create_task(load(lambda: _rest_on_a_new_connection(base, model, batch))) for _ in range(2)]
    try:
        for version in (2, 3):
            registry.add_version(model, version, scripted_model(10 + version)[0])
            revision = registry.deploy(model, [(version, 1.0, common_pb2.VARIANT_CHAMPION)])
            await events.send(MODELS, model, models_pb2.DeploymentChanged(model=model, revision=revision))
            async with asyncio.timeout(120):
                while served[-30:] != [str(version)] * 30:
                    assert served.count(None) == 0, "a call failed"
                    await asyncio.sleep(0.2)
    finally:
        stop.set()
        await asyncio.gather(*loaders)
        await events.stop()
    return served


async def test_two_workers_share_the_ports_report_together_and_promote_without_a_lost_call(
        triton: TritonEndpoints, kafka_bootstrap: str, tmp_path: Path) -> None:
    model = f"workers-{uuid.uuid4().hex[:6]}"
    registry = FakeRegistry()
    registry.add_version(model, 1, scripted_model(3)[0])
    registry.deploy(model, [(1, 1.0, common_pb2.VARIANT_CHAMPION)])
    batch = np.random.default_rng(2).normal(size=(1, FEATURES)).astype(np.float32)
    async with registry_server(registry) as target:
        settings = gateway_settings(triton, kafka_bootstrap, target, tmp_path, grpc_port=free_port(), workers=2)
        gateway = f"127.0.0.1:{settings.grpc_port}"
        output = tmp_path / "gateway.log"
        with output.open("w") as sink:
            process = subprocess.Popen([sys.executable, "-c", RUN, settings.model_dump_json()], stderr=sink)
        try:
            base = f"http://127.0.0.1:{settings.http_port}"
            async with httpx.AsyncClient(base_url=base) as http:
                async with asyncio.timeout(120):
                    # ready when both have served: the second binds the shared ports once it is ready
                    while len(_requests_by_worker(await _metrics(http), model)) < 2:
                        assert process.poll() is None, "the gateway exited"
                        await asyncio.gather(*(_infer_on_a_new_connection(gateway, model, batch) for _ in range(8)))
                before = await _metrics(http)
                answered = await asyncio.gather(*(_infer_on_a_new_connection(gateway, model, batch)
                                                  for _ in range(40)))
                answered_rest = await asyncio.gather(*(_rest_on_a_new_connection(base, model, batch)
                                                       for _ in range(40)))
                assert None not in answered and None not in answered_rest
                scrapes = [await _metrics(http) for _ in range(6)]  # answered by either process
            served = await _promotions_under_load(registry, model, kafka_bootstrap, gateway, base, batch)
            direct = grpc_client.InferenceServerClient(triton.grpc_url)
            try:
                async with asyncio.timeout(60):  # v1: neither served nor the fallback after v3
                    while await direct.is_model_ready(f"{model}.v1"):
                        await asyncio.sleep(0.2)
                assert await direct.is_model_ready(f"{model}.v3") and await direct.is_model_ready(f"{model}.v2")
            finally:
                await direct.close()
        finally:
            process.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(process.wait, 60)
    log = output.read_text()
    assert code == 0, log[-4000:]
    for version in (1, 2, 3):
        assert log.count(f"loaded {model}.v{version} into Triton") == 1, log[-4000:]
    assert None not in served, f"{served.count(None)} of {len(served)} calls failed during the promotions"
    changes = [v for i, v in enumerate(served) if i == 0 or v != served[i - 1]]
    assert changes[0] == "1" and changes[-1] == "3" and set(changes) == {"1", "2", "3"}
    for after in scrapes:
        for protocol in ("grpc", "rest"):
            served = _requests_by_worker(after, model, protocol)
            assert sorted(served) == ["0", "1"] and all(n > 0 for n in served.values())  # both served
            assert sum(served.values()) - sum(_requests_by_worker(before, model, protocol).values()) == 40
