"""In-memory stand-ins for Triton (and a reconciler over them), shared by the gateway's unit tests."""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tritonclient.grpc import service_pb2 as pb

from loopline_core.errors import Unavailable

from loopline_serving_gateway.adapters.registry import InMemoryRegistry, TensorSpec, VersionInfo
from loopline_serving_gateway.domain.routing import RoutingTable
from loopline_serving_gateway.handlers.prediction_events import Served
from loopline_serving_gateway.handlers.reconciler import Reconciler


def request(model: str, rows: int = 1, features: int = 4, version: str = "") -> pb.ModelInferRequest:
    data = np.arange(rows * features, dtype=np.float32).reshape(rows, features)
    message = pb.ModelInferRequest(model_name=model, model_version=version)
    message.inputs.add(name="features", datatype="FP32", shape=[rows, features])
    message.raw_input_contents.append(data.tobytes())
    return message


class FakeTriton:
    """Answers every loaded model with ``features * version`` summed per row; can break models."""

    def __init__(self) -> None:
        self.loaded: set[str] = set()
        self.broken: set[str] = set()
        self.calls: list[str] = []
        self.metadata: list[dict[str, str]] = []  # of each infer call (trace context)
        self.load_fails: set[str] = set()

    async def infer(self, request: pb.ModelInferRequest, timeout_s: float,
                    metadata: Sequence[tuple[str, str]] | None = None) -> pb.ModelInferResponse:
        self.calls.append(request.model_name)
        self.metadata.append(dict(metadata or ()))
        if request.model_name in self.broken or request.model_name not in self.loaded:
            raise Unavailable(f"{request.model_name} is not ready")
        rows, features = request.inputs[0].shape
        data = np.frombuffer(request.raw_input_contents[0], np.float32).reshape(rows, features)
        out = (data.sum(axis=1, keepdims=True) * int(request.model_version)).astype(np.float32)
        response = pb.ModelInferResponse(model_name=request.model_name, model_version=request.model_version)
        response.outputs.add(name="prediction", datatype="FP32", shape=[rows, 1])
        response.raw_output_contents.append(out.tobytes())
        return response

    async def load(self, name: str) -> None:
        if name in self.load_fails:
            raise Unavailable(f"failed to load {name}")
        self.loaded.add(name)

    async def unload(self, name: str) -> None:
        self.loaded.discard(name)

    async def is_ready(self, name: str, version: str = "") -> bool:
        return name in self.loaded


def wide_served(n: int, features: int) -> Served:
    """A one-row prediction with ``features`` FP32 inputs and three outputs, as the log gets it."""
    message = pb.ModelInferRequest(model_name="wide")
    message.inputs.add(name="features", datatype="FP32", shape=[1, features])
    message.raw_input_contents.append(np.ones(features, np.float32).tobytes())
    response = pb.ModelInferResponse()
    response.outputs.add(name="probabilities", datatype="FP32", shape=[1, 3])
    response.raw_output_contents.append(np.array([0.2, 0.3, 0.5], np.float32).tobytes())
    return Served(f"wide-{n}", "wide", 1, 1, "wide.v1", message, response, 10, 0, 1)


SIGNATURE = ((TensorSpec("features", "FP32", (-1, 4)),), (TensorSpec("probabilities", "FP32", (-1, 3)),))


def reconciler_world(tmp_path: Path) -> tuple[InMemoryRegistry, FakeTriton, RoutingTable, Reconciler]:
    """A reconciler over an in-memory registry holding versions 1-3 of "iris", a fake Triton and an empty table."""
    registry, triton, table = InMemoryRegistry(), FakeTriton(), RoutingTable()
    for version in (1, 2, 3):
        artifact = f"torchscript-{version}".encode()
        registry.add_version(VersionInfo("iris", version, hashlib.sha256(artifact).hexdigest(), *SIGNATURE), artifact)
    return registry, triton, table, Reconciler(registry, triton, table, tmp_path, inflight=Counter())


class CountingTriton(FakeTriton):
    """Loads take a while; counts the loads, and the most at once."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[str] = []
        self.running = self.most = 0

    async def load(self, name: str) -> None:
        self.loads.append(name)
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await asyncio.sleep(0.05)
            await super().load(name)
        finally:
            self.running -= 1
