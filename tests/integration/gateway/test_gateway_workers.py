"""WORKERS=2 on the real Triton and Kafka: both processes serve the shared gRPC and HTTP
ports, and /metrics, whichever process answers it, counts every request of both, labelled
by worker."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.grpc.aio as grpc_client
from loopline.common.v1 import common_pb2
from loopline_cli.stack import TritonEndpoints
from prometheus_client.parser import text_string_to_metric_families
from tritonclient.utils import InferenceServerException

from gateway_it import FEATURES, FakeRegistry, free_port, gateway_settings, registry_server, scripted_model

pytestmark = pytest.mark.integration

RUN = ("import sys; from loopline_serving_gateway.settings import GatewaySettings; "
       "from loopline_serving_gateway.workers import serve_all; "
       "sys.exit(serve_all(GatewaySettings.model_validate_json(sys.argv[1])))")


async def _infer_on_a_new_connection(target: str, model: str, batch: np.ndarray) -> bool:
    """One call on a connection of its own (SO_REUSEPORT spreads connections, not calls)."""
    client = grpc_client.InferenceServerClient(target)
    try:
        tensor = grpc_client.InferInput("features", list(batch.shape), "FP32")
        tensor.set_data_from_numpy(batch)
        await client.infer(model, [tensor], client_timeout=10)
        return True
    except InferenceServerException:
        return False
    finally:
        await client.close()


async def _metrics(http: httpx.AsyncClient) -> str:
    try:
        return (await http.get("/metrics")).text
    except httpx.TransportError:
        return ""  # not listening yet


async def _rest_on_a_new_connection(base: str, model: str, batch: np.ndarray) -> bool:
    body = {"inputs": [{"name": "features", "datatype": "FP32", "shape": list(batch.shape),
                        "data": batch.ravel().tolist()}]}
    async with httpx.AsyncClient(base_url=base) as client:
        return (await client.post(f"/v2/models/{model}/infer", json=body, timeout=10)).status_code == 200


def _requests_by_worker(text: str, model: str, protocol: str = "grpc") -> dict[str, float]:
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "gateway_requests_total" and (labels.get("model"), labels.get("protocol")) == (
                    model, protocol):
                found[labels["worker"]] = found.get(labels["worker"], 0.0) + sample.value
    return found


async def test_two_workers_share_the_grpc_port_and_the_first_reports_both(
        triton: TritonEndpoints, kafka_bootstrap: str, tmp_path: Path) -> None:
    model = f"workers-{uuid.uuid4().hex[:6]}"
    registry = FakeRegistry()
    registry.add_version(model, 1, scripted_model(3)[0])
    registry.deploy(model, [(1, 1.0, common_pb2.VARIANT_CHAMPION)])
    batch = np.random.default_rng(2).normal(size=(1, FEATURES)).astype(np.float32)
    async with registry_server(registry) as target:
        settings = gateway_settings(triton, kafka_bootstrap, target, tmp_path, grpc_port=free_port(), workers=2)
        gateway = f"127.0.0.1:{settings.grpc_port}"
        process = subprocess.Popen([sys.executable, "-c", RUN, settings.model_dump_json()])
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
                assert all(answered) and all(answered_rest)
                scrapes = [await _metrics(http) for _ in range(6)]  # answered by either process
        finally:
            process.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(process.wait, 60)
    assert code == 0
    for after in scrapes:
        for protocol in ("grpc", "rest"):
            served = _requests_by_worker(after, model, protocol)
            assert sorted(served) == ["0", "1"] and all(n > 0 for n in served.values())  # both served
            assert sum(served.values()) - sum(_requests_by_worker(before, model, protocol).values()) == 40
