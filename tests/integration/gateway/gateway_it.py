"""Helpers for the gateway's integration tests: real TorchScript models, a registry
gRPC server fed by the test, the gateway wired in-process against the session's
real Triton and Kafka, and reads of loopline.predictions.v1."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import socket
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import torch
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from loopline.common.v1 import common_pb2
from loopline.events.v1 import models_pb2, predictions_pb2
from loopline.registry.v1 import registry_pb2 as rpb
from loopline.registry.v1 import registry_pb2_grpc as rpb_grpc
from loopline_cli.stack import TritonEndpoints
from loopline_core.kafka.topics import PREDICTIONS, all_topics

from loopline_serving_gateway.bootstrap import Gateway, build
from loopline_serving_gateway.settings import GatewaySettings

API_KEY = "gateway-it-registry-key-0123456789"
FEATURES, CLASSES = 4, 3


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def scripted_model(seed: int, features: int = FEATURES) -> tuple[bytes, torch.nn.Module]:
    """A real TorchScript classifier: features FP32 [-1, ``features``] -> probabilities FP32 [-1, 3]."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(features, 8), torch.nn.ReLU(), torch.nn.Linear(8, CLASSES),
                                torch.nn.Softmax(dim=1)).eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is still the format Triton serves here
        scripted = torch.jit.script(model)
        torch.jit.save(scripted, buffer)
    return buffer.getvalue(), scripted


def signature(features: int = FEATURES) -> common_pb2.Signature:
    return common_pb2.Signature(
        inputs=[common_pb2.TensorSpec(name="features", datatype="FP32", shape=[-1, features])],
        outputs=[common_pb2.TensorSpec(name="probabilities", datatype="FP32", shape=[-1, CLASSES])],
        feature_names=[f"f{i}" for i in range(features)])


@dataclass
class FakeRegistry(rpb_grpc.RegistryServiceServicer):
    """The registry's read side, as the gateway calls it, fed directly by the test."""

    deployments: dict[str, rpb.Deployment] = field(default_factory=dict)
    versions: dict[tuple[str, int], rpb.ModelVersion] = field(default_factory=dict)
    artifacts: dict[str, bytes] = field(default_factory=dict)

    def add_version(self, model: str, version: int, artifact: bytes, features: int = FEATURES) -> None:
        digest = hashlib.sha256(artifact).hexdigest()
        self.artifacts[digest] = artifact
        self.versions[(model, version)] = rpb.ModelVersion(
            model=model, version=version, signature=signature(features),
            artifact=rpb.Artifact(sha256=digest, size_bytes=len(artifact), format="torchscript"))

    def deploy(self, model: str, splits: list[tuple[int, float, int]], shadows: tuple[int, ...] = (),
               fallback: int | None = None) -> int:
        """A new revision; ``fallback`` as the registry states it (None: left unset, as an older registry)."""
        revision = self.deployments[model].revision + 1 if model in self.deployments else 1
        self.deployments[model] = rpb.Deployment(
            model=model, revision=revision, shadow_versions=list(shadows), fallback_version=fallback,
            splits=[models_pb2.TrafficSplit(version=v, weight=w, variant=k) for v, w, k in splits])
        return revision

    async def _authorised(self, context: grpc.aio.ServicerContext) -> None:
        if dict(context.invocation_metadata() or ()).get("authorization") != f"Bearer {API_KEY}":
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer key")

    async def ListDeployments(self, request: object, context: grpc.aio.ServicerContext) -> rpb.ListDeploymentsResponse:
        await self._authorised(context)
        return rpb.ListDeploymentsResponse(deployments=list(self.deployments.values()))

    async def GetDeployment(self, request: rpb.GetDeploymentRequest, context: grpc.aio.ServicerContext) -> rpb.Deployment:
        await self._authorised(context)
        if request.model not in self.deployments:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no deployment of {request.model}")
        return self.deployments[request.model]

    async def GetModelVersion(self, request: rpb.GetModelVersionRequest,
                              context: grpc.aio.ServicerContext) -> rpb.ModelVersion:
        await self._authorised(context)
        key = (request.model, request.version)
        if key not in self.versions:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no version {key}")
        return self.versions[key]

    async def DownloadArtifact(self, request: rpb.DownloadArtifactRequest,
                               context: grpc.aio.ServicerContext) -> AsyncIterator[rpb.DownloadArtifactResponse]:
        await self._authorised(context)
        data = self.artifacts[request.sha256]
        for start in range(0, len(data), 1 << 16):
            yield rpb.DownloadArtifactResponse(chunk=data[start:start + (1 << 16)])


@contextlib.asynccontextmanager
async def registry_server(registry: FakeRegistry) -> AsyncIterator[str]:
    server = grpc.aio.server()
    rpb_grpc.add_RegistryServiceServicer_to_server(registry, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(0)


def gateway_settings(triton: TritonEndpoints, kafka_bootstrap: str, registry_target: str, run_dir: Path,
                     **extra: object) -> GatewaySettings:
    return GatewaySettings(**{
        "http_port": free_port(), "grpc_port": 0, "run_dir": run_dir,
        "triton": {"http_url": triton.http_url, "grpc_url": triton.grpc_url,
                   "model_repository": triton.model_repository},
        "kafka": {"bootstrap_servers": kafka_bootstrap},
        "endpoints": {"registry": registry_target, "registry_api_key": API_KEY},
        "telemetry": {"local_trace_dir": run_dir / "traces"},
        "resync_interval_s": 3600.0, "drain_timeout_s": 5.0,
        **extra,
    })


@contextlib.asynccontextmanager
async def running_gateway(settings: GatewaySettings) -> AsyncIterator[Gateway]:
    gateway = build(settings)
    task = asyncio.create_task(gateway.run())
    try:
        async with asyncio.timeout(120):
            while not (gateway.host.readiness.started and gateway.model_events and gateway.model_events.started.is_set()):
                if task.done():
                    raise RuntimeError(f"gateway exited early: {task.result()}")
                await asyncio.sleep(0.05)
        yield gateway
    finally:
        gateway.host.request_stop()
        await asyncio.wait_for(task, 60)


async def read_predictions(kafka_bootstrap: str, want: set[str], timeout_s: float = 30.0) -> dict[str, list[predictions_pb2.PredictionLogged]]:
    """PredictionLogged events whose key is in ``want``, read from the start of the topic."""
    partitions = {s.name: s.partitions for s in all_topics()}[PREDICTIONS]
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    found: dict[str, list[predictions_pb2.PredictionLogged]] = {}
    try:
        tps = [TopicPartition(PREDICTIONS, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        async with asyncio.timeout(timeout_s):
            while not want <= found.keys():
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    for record in records:
                        key = record.key.decode() if record.key else ""
                        if key in want:
                            found.setdefault(key, []).append(predictions_pb2.PredictionLogged.FromString(record.value))
    finally:
        await consumer.stop()
    return found


async def read_topic(kafka_bootstrap: str, topic: str, timeout_s: float = 30.0) -> list[ConsumerRecord]:
    """Every record of ``topic``, from the start of each partition to its end offset at the time of the call."""
    partitions = {s.name: s.partitions for s in all_topics()}[topic]
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        async with asyncio.timeout(timeout_s):
            while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    records.extend(batch)
    finally:
        await consumer.stop()
    return records
