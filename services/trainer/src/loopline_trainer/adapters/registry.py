"""The registry port over gRPC, with the trainer's bearer key on every call."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from loopline.common.v1 import common_pb2
from loopline.events.v1 import models_pb2
from loopline.registry.v1 import registry_pb2 as pb
from loopline.registry.v1.registry_pb2_grpc import RegistryServiceStub

from loopline_core.errors import AlreadyExists, NotFound

from loopline_trainer.adapters.grpc_errors import translated
from loopline_trainer.domain.dataset import Snapshot
from loopline_trainer.service.ports import Champion, NewVersion, Split

_VARIANTS = {"champion": common_pb2.VARIANT_CHAMPION, "canary": common_pb2.VARIANT_CANARY}
_NAMES = {v: k for k, v in _VARIANTS.items()}
_CHUNK = 1 << 20
#: Classifiers get the registry's default gate (its GATE__* settings: accuracy, higher is better, and
#: the margin the operator chose); an explicit policy here would pin the margin to 0. Regressors need
#: their own metric.
_GATES = {"regression": pb.GatePolicy(metric="rmse", lower_is_better=True)}


class GrpcRegistry:
    def __init__(self, channel: Callable[[], grpc.aio.Channel], api_key: str, timeout_s: float = 30.0) -> None:
        self._channel = channel
        self._metadata = (("authorization", f"Bearer {api_key}"),) if api_key else ()
        self._timeout = timeout_s

    async def _call(self, name: str, request: object) -> object:
        method = getattr(RegistryServiceStub(self._channel()), name)
        with translated("registry", name):
            return await method(request, metadata=self._metadata, timeout=self._timeout)

    async def ensure_model(self, model: str, task: str) -> None:
        try:
            await self._call("CreateModel", pb.CreateModelRequest(
                name=model, task=task, gate=_GATES.get(task), idempotency_key=f"trainer/model/{model}",
                description="created by the trainer"))
        except AlreadyExists:
            pass

    async def champion(self, model: str) -> Champion | None:
        try:
            found = await self._call("ResolveAlias", pb.ResolveAliasRequest(model=model, alias="champion"))
        except NotFound:
            return None
        assert isinstance(found, pb.ModelVersion)
        return Champion(found.version, found.artifact.sha256, tuple(found.signature.feature_names),
                        dict(found.params))

    async def download(self, sha256: str) -> bytes:
        stream = RegistryServiceStub(self._channel()).DownloadArtifact(
            pb.DownloadArtifactRequest(sha256=sha256), metadata=self._metadata, timeout=self._timeout)
        with translated("registry", "DownloadArtifact"):
            return b"".join([part.chunk async for part in stream])

    async def upload(self, data: bytes, sha256: str) -> None:
        async def parts() -> AsyncIterator[pb.UploadArtifactRequest]:
            yield pb.UploadArtifactRequest(header=pb.ArtifactHeader(format="torchscript", sha256=sha256,
                                                                    size_bytes=len(data)))
            for start in range(0, len(data), _CHUNK):
                yield pb.UploadArtifactRequest(chunk=data[start:start + _CHUNK])

        with translated("registry", "UploadArtifact"):
            await RegistryServiceStub(self._channel()).UploadArtifact(parts(), metadata=self._metadata,
                                                                       timeout=self._timeout)

    async def dataset_version(self, dataset: str, snapshot: Snapshot, key: str) -> int:
        try:
            await self._call("CreateDataset", pb.CreateDatasetRequest(
                name=dataset, description="snapshots taken by the trainer", idempotency_key=f"trainer/{dataset}"))
        except AlreadyExists:
            pass
        start, end = snapshot.window()
        window = common_pb2.TimeWindow()
        if start and end:
            window.start.FromDatetime(start)
            window.end.FromDatetime(end)
        made = await self._call("CreateDatasetVersion", pb.CreateDatasetVersionRequest(
            dataset=dataset, content_sha256=snapshot.content_sha256(), row_count=len(snapshot), window=window,
            query=snapshot.query, idempotency_key=key))
        assert isinstance(made, pb.DatasetVersion)
        return made.version

    async def create_run(self, run_id: str, model: str, params: dict[str, str], code_version: str,
                         environment: dict[str, str], inputs: Sequence[tuple[str, int, str]]) -> None:
        await self._call("CreateTrainingRun", pb.CreateTrainingRunRequest(
            run_id=run_id, model=model, params=params, code_version=code_version, environment=environment,
            inputs=[pb.RunInput(dataset=d, version=v, role=r) for d, v, r in inputs], idempotency_key=run_id))

    async def log_metrics(self, run_id: str, points: Sequence[tuple[str, int, float]]) -> None:
        now = Timestamp()
        now.GetCurrentTime()
        await self._call("LogRunMetrics", pb.LogRunMetricsRequest(
            run_id=run_id, points=[pb.MetricPoint(name=n, step=s, value=v, at=now) for n, s, v in points]))

    async def finish_run(self, run_id: str, ok: bool, reason: str) -> None:
        status = pb.RUN_STATUS_COMPLETED if ok else pb.RUN_STATUS_FAILED
        await self._call("FinishTrainingRun", pb.FinishTrainingRunRequest(run_id=run_id, status=status,
                                                                          reason=reason))

    async def register(self, version: NewVersion) -> int:
        name, width = version.outputs
        signature = common_pb2.Signature(
            inputs=[common_pb2.TensorSpec(name="features", datatype="FP32", shape=[-1, len(version.feature_names)])],
            outputs=[common_pb2.TensorSpec(name=name, datatype="FP32", shape=[-1, width])],
            feature_names=list(version.feature_names))
        made = await self._call("RegisterModelVersion", pb.RegisterModelVersionRequest(
            model=version.model, artifact_sha256=version.artifact_sha256, signature=signature,
            params=version.params, metrics=version.metrics, run_id=version.run_id,
            reference_profile=version.reference_profile, idempotency_key=version.idempotency_key,
            evaluations=[pb.Evaluation(holdout_sha256=version.holdout_sha256, metrics=version.evaluation)]))
        assert isinstance(made, pb.ModelVersion)
        return made.version

    async def record_evaluation(self, model: str, version: int, holdout_sha256: str,
                                metrics: dict[str, float]) -> None:
        await self._call("RecordEvaluation", pb.RecordEvaluationRequest(
            model=model, version=version, evaluation=pb.Evaluation(holdout_sha256=holdout_sha256, metrics=metrics)))

    async def promote(self, model: str, version: int, reason: str) -> None:
        await self._call("PromoteModelVersion", pb.PromoteModelVersionRequest(
            model=model, version=version, alias="champion", reason=reason))

    async def deployment(self, model: str) -> tuple[int, list[Split]]:
        try:
            found = await self._call("GetDeployment", pb.GetDeploymentRequest(model=model))
        except NotFound:
            return 0, []
        assert isinstance(found, pb.Deployment)
        return found.revision, [Split(s.version, s.weight, _NAMES.get(s.variant, "champion")) for s in found.splits]

    async def set_deployment(self, model: str, revision: int, splits: Sequence[Split], reason: str) -> None:
        await self._call("SetDeployment", pb.SetDeploymentRequest(
            model=model, expected_revision=revision, reason=reason,
            splits=[models_pb2.TrafficSplit(version=s.version, weight=s.weight, variant=_VARIANTS[s.variant])
                    for s in splits]))
