"""The loop's parts bound to a running stack: bootstrap through the trainer, watch the registry and topics.

``bootstrap_model`` asks the trainer (gRPC ``StartTraining``, source
``jsonl:<path>``) for the first version and waits until it is champion at
100% and answers through the gateway. ``PlatformWatcher`` is the scenario's
``Watcher`` on the real platform: drift is seen on ``loopline.drift.v1`` /
``loopline.retrain.v1`` (events for the model), the champion at 100% is read
from the registry's ``GetDeployment`` with the admin key; it also keeps a
timeline of what the loop did (retrain requested, training started and
completed, deployment changes) for the report.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from aiokafka import AIOKafkaConsumer, TopicPartition
from loopline.events.v1 import drift_pb2, training_pb2
from loopline.trainer.v1 import trainer_pb2 as tpb
from loopline.trainer.v1.trainer_pb2_grpc import TrainerServiceStub
from loopline_core.kafka import cloudevents, topics

from loopline_cli.loop.registry import Registry, full_champion, splits_of
from loopline_cli.loop.sources import Record
from loopline_cli.loop.traffic import GatewayClient, GatewayError


class LoopError(RuntimeError):
    """The platform did not do what the loop needs (bootstrap failed, a wait timed out): the message says what."""


def read_admin_key(run_dir: Path) -> str:
    from loopline_cli.stack.secrets import admin_key_file

    path = admin_key_file(run_dir)
    try:
        key = path.read_text().strip()
    except OSError as exc:
        raise LoopError(f"no admin key at {path} ({exc.strerror}); start the stack first") from None
    if not key:
        raise LoopError(f"the admin key file {path} is empty")
    return key


async def wait_run(trainer: TrainerServiceStub, run_id: str, timeout_s: float) -> tpb.TrainingRun:
    deadline = time.monotonic() + timeout_s
    while True:
        run = await trainer.GetTrainingRun(tpb.GetTrainingRunRequest(run_id=run_id), timeout=5.0)
        if run.status in (tpb.RUN_STATUS_COMPLETED, tpb.RUN_STATUS_FAILED):
            return run
        if time.monotonic() > deadline:
            raise LoopError(f"training run {run_id} still {tpb.RunStatus.Name(run.status)} after {timeout_s:.0f}s")
        await asyncio.sleep(0.5)


@dataclass(frozen=True)
class Bootstrapped:
    model: str
    version: int
    run_id: str
    accuracy: float
    train_s: float
    ready_s: float


async def bootstrap_model(*, model: str, dataset: Path, trainer_target: str, registry: Registry,
                          gateway: GatewayClient, probe: Record, timeout_s: float = 180.0) -> Bootstrapped:
    """Trains the first version on ``dataset`` (JSONL) and waits for it to be champion at 100% and to
    answer through the gateway (gRPC and REST)."""
    began = time.monotonic()
    async with grpc.aio.insecure_channel(trainer_target) as channel:
        trainer = TrainerServiceStub(channel)
        started = await trainer.StartTraining(tpb.StartTrainingRequest(
            model=model, request_id="bootstrap", reason="loopline demo: first model",
            params={"source": f"jsonl:{dataset}"}), timeout=30.0)
        run = await wait_run(trainer, started.run_id, timeout_s)
    if run.status != tpb.RUN_STATUS_COMPLETED:
        raise LoopError(f"bootstrap training of {model!r} failed: {run.error}")
    version = run.registered_version
    trained = time.monotonic()
    deadline = trained + timeout_s
    while True:
        deployment = await registry.deployment(model)
        if deployment is not None and full_champion(deployment) == version:
            break
        if time.monotonic() > deadline:
            raise LoopError(f"{model} v{version} is not champion at 100% after {timeout_s:.0f}s: "
                            f"{splits_of(deployment) if deployment else 'no deployment'}")
        await asyncio.sleep(0.5)
    last = ""
    while True:
        try:
            answers = [await gateway.infer_grpc(probe), await gateway.infer_rest(probe)]
        except GatewayError as exc:
            last = str(exc)
        else:
            if all(a.version == version and a.prediction_id for a in answers):
                break
            last = f"answered by versions {[a.version for a in answers]}"
        if time.monotonic() > deadline:
            raise LoopError(f"the gateway does not serve {model} v{version} after {timeout_s:.0f}s: {last}")
        await asyncio.sleep(0.5)
    return Bootstrapped(model, version, run.run_id, run.metrics.get("accuracy", float("nan")),
                        trained - began, time.monotonic() - trained)


@dataclass
class Timeline:
    """What the loop did, in monotonic seconds (first occurrence of each step)."""

    drift_at: float | None = None
    drift: drift_pb2.DriftDetected | None = None
    retrain_at: float | None = None
    retrain: drift_pb2.RetrainRequested | None = None
    retrain_trace_id: str = ""
    training_started_at: float | None = None
    training_completed_at: float | None = None
    completed: training_pb2.TrainingCompleted | None = None
    failed: training_pb2.TrainingFailed | None = None
    #: (monotonic time, splits) at each change of the deployment seen by polling.
    deployments: list[tuple[float, list[tuple[int, float]]]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


_TYPES = cloudevents.EventTypes(drift_pb2.DriftDetected, drift_pb2.RetrainRequested, training_pb2.TrainingStarted,
                                training_pb2.TrainingCompleted, training_pb2.TrainingFailed)
WATCHED_TOPICS = (topics.DRIFT, topics.RETRAIN, topics.TRAINING)


def _trace_id(headers: Sequence[tuple[str, bytes]]) -> str:
    for key, value in headers:
        if key == "traceparent":
            parts = value.decode(errors="replace").split("-")
            return parts[1] if len(parts) == 4 else ""
    return ""


class PlatformWatcher:
    """``Watcher`` on the live platform; ``start`` pins the topics' ends before the scenario sends anything."""

    def __init__(self, *, model: str, bootstrap_servers: str, registry: Registry, bootstrap_version: int,
                 say: Callable[[str], None] = lambda line: None) -> None:
        self.model, self.registry, self.initial = model, registry, bootstrap_version
        self.timeline = Timeline()
        #: Progress lines ("+3.6s drift detected ..."); times count from ``change_at`` (monotonic) once set.
        self.say = say
        self.change_at: float | None = None
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False,
                                          group_id=None, client_id=f"loopline-demo-{uuid.uuid4().hex[:6]}")
        self._task: asyncio.Task[None] | None = None
        self._last_splits: list[tuple[int, float]] | None = None

    async def start(self) -> None:
        await self._consumer.start()
        counts = {spec.name: spec.partitions for spec in topics.all_topics()}  # the stack creates the catalogue
        partitions = [TopicPartition(topic, p) for topic in WATCHED_TOPICS for p in range(counts[topic])]
        self._consumer.assign(partitions)
        await self._consumer.seek_to_end(*partitions)
        for tp in partitions:
            await self._consumer.position(tp)  # pin the end before the scenario begins
        self._task = asyncio.create_task(self._consume())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self._consumer.stop()

    def _note(self, at: float, text: str) -> None:
        stamp = f"{at - self.change_at:+6.1f}s" if self.change_at is not None else "        "
        self.say(f"{stamp} {text}")

    async def _consume(self) -> None:
        t = self.timeline
        while True:
            batches = await self._consumer.getmany(timeout_ms=200)
            now = time.monotonic()
            for records in batches.values():
                for record in records:
                    if record.key is not None and record.key.decode(errors="replace") != self.model:
                        continue
                    try:
                        event = cloudevents.decode(record.value, record.headers, _TYPES)
                    except Exception as exc:  # noqa: BLE001 - another producer's record: noted, not fatal
                        t.errors.append(f"{record.topic}@{record.offset}: {exc}")
                        continue
                    data = event.data
                    if getattr(data, "model", self.model) != self.model:
                        continue
                    if isinstance(data, drift_pb2.DriftDetected) and t.drift_at is None:
                        t.drift_at, t.drift = now, data
                        self._note(now, f"DriftDetected on v{data.version}: {data.detector} "
                                        f"(statistic {data.statistic:.1f} > {data.threshold:.1f})")
                    elif isinstance(data, drift_pb2.RetrainRequested) and t.retrain_at is None:
                        t.retrain_at, t.retrain = now, data
                        t.retrain_trace_id = _trace_id(record.headers)
                        self._note(now, f"RetrainRequested: {data.reason[:100]}")
                    elif isinstance(data, training_pb2.TrainingStarted) and t.training_started_at is None \
                            and t.retrain is not None and data.request_id == t.retrain.request_id:
                        t.training_started_at = now
                        self._note(now, "TrainingStarted (the trainer had waited for enough labelled rows)")
                    elif isinstance(data, training_pb2.TrainingCompleted) and t.completed is None \
                            and t.retrain is not None and data.request_id == t.retrain.request_id:
                        t.training_completed_at, t.completed = now, data
                        self._note(now, f"TrainingCompleted: v{data.version}, holdout accuracy "
                                        f"{data.metrics.get('accuracy', float('nan')):.3f} against the champion's "
                                        f"{data.metrics.get('champion_accuracy', float('nan')):.3f}, gate "
                                        + ("passed" if data.gate_passed else f"refused: {data.gate_reason}"))
                    elif isinstance(data, training_pb2.TrainingFailed) and t.failed is None \
                            and t.retrain is not None and data.request_id == t.retrain.request_id:
                        t.training_completed_at, t.failed = now, data
                        self._note(now, f"TrainingFailed: {data.error}")

    async def drift_detected(self) -> bool:
        return self.timeline.drift_at is not None or self.timeline.retrain_at is not None

    async def champion_at_full(self) -> int | None:
        try:
            deployment = await self.registry.deployment(self.model)
        except grpc.aio.AioRpcError as exc:
            self.timeline.errors.append(f"GetDeployment: {exc.code().name}: {exc.details()}")
            return None
        if deployment is None:
            return None
        splits = splits_of(deployment)
        if splits != self._last_splits:
            now = time.monotonic()
            if self._last_splits is not None:
                self._note(now, "deployment " + " / ".join(f"v{v} {w:.0%}" for v, w in splits))
            self._last_splits = splits
            self.timeline.deployments.append((now, splits))
        return full_champion(deployment)

