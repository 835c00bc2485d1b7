"""The benchmark's clients: the same client code calls Triton directly and the gateway.

gRPC: one grpc.aio channel and a prebuilt ModelInferRequest (raw tensor bytes).
REST: one aiohttp session posting a prebuilt V2 JSON body.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import grpc
import numpy as np
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc


@dataclass
class Result:
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    #: Every answered call's latency (s), to merge runs of several client processes.
    latencies: list[float] = field(default_factory=list, repr=False)

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds


async def closed_loop(call: Callable[[], Awaitable[None]], concurrency: int, count: int, limit_s: float) -> Result:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + limit_s
    todo = iter(range(count))

    async def worker() -> None:
        nonlocal errors
        for _ in todo:
            if time.perf_counter() > deadline:
                return
            began = time.perf_counter()
            try:
                await call()
            except Exception:  # noqa: BLE001 - counted, reported
                errors += 1
                continue
            latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    cuts = statistics.quantiles(latencies, n=100)
    return Result(len(latencies), errors, elapsed, statistics.median(latencies) * 1e3, cuts[98] * 1e3, latencies)


def grpc_caller(target: str, model: str, batch: np.ndarray) -> tuple[Callable[[], Awaitable[None]], grpc.aio.Channel]:
    channel = grpc.aio.insecure_channel(target)
    stub = pb_grpc.GRPCInferenceServiceStub(channel)
    request = pb.ModelInferRequest(model_name=model)
    request.inputs.add(name="features", datatype="FP32", shape=list(batch.shape))
    request.raw_input_contents.append(batch.tobytes())
    infer = stub.ModelInfer

    async def call() -> None:
        await infer(request, timeout=10.0)

    return call, channel


def rest_caller(session: aiohttp.ClientSession, base: str, model: str,
                batch: np.ndarray) -> Callable[[], Awaitable[None]]:
    body = json.dumps({"inputs": [{"name": "features", "datatype": "FP32", "shape": list(batch.shape),
                                   "data": batch.reshape(-1).tolist()}]}).encode()
    url = f"{base}/v2/models/{model}/infer"
    headers = {"content-type": "application/json"}

    async def call() -> None:
        async with session.post(url, data=body, headers=headers) as reply:
            if reply.status != 200:
                raise RuntimeError(f"HTTP {reply.status}: {await reply.text()}")
            await reply.read()

    return call
