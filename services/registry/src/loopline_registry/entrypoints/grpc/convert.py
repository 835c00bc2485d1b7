"""Domain objects to loopline.registry.v1 messages and requests to commands (no logic)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp
from loopline.common.v1 import common_pb2
from loopline.registry.v1 import registry_pb2 as pb
from loopline_core.errors import InvalidArgument

from loopline_registry.adapters.event_codec import signature_pb, split_pb, timestamp
from loopline_registry.domain.audit import AuditEntry, ServedAt
from loopline_registry.domain.datasets import DatasetVersion
from loopline_registry.domain.deployment import Deployment, TrafficSplit, Variant
from loopline_registry.domain.model import GatePolicy, RegisteredModel
from loopline_registry.domain.runs import RunStatus, TrainingRun
from loopline_registry.domain.version import Artifact, Evaluation, ModelVersion, Signature, TensorSpec, VersionStatus

STATUS = {VersionStatus.CANDIDATE: pb.VERSION_STATUS_CANDIDATE, VersionStatus.STAGED: pb.VERSION_STATUS_STAGED,
          VersionStatus.PRODUCTION: pb.VERSION_STATUS_PRODUCTION, VersionStatus.ARCHIVED: pb.VERSION_STATUS_ARCHIVED}
STATUS_OF = {v: k for k, v in STATUS.items()}
RUN_STATUS = {RunStatus.RUNNING: pb.RUN_STATUS_RUNNING, RunStatus.COMPLETED: pb.RUN_STATUS_COMPLETED,
              RunStatus.FAILED: pb.RUN_STATUS_FAILED}
RUN_STATUS_OF = {v: k for k, v in RUN_STATUS.items()}
VARIANT_OF = {common_pb2.VARIANT_CHAMPION: Variant.CHAMPION, common_pb2.VARIANT_CANARY: Variant.CANARY}


def ts(moment: datetime | None) -> Timestamp | None:
    return timestamp(moment) if moment else None


def moment(stamp: Timestamp, present: bool) -> datetime | None:
    return stamp.ToDatetime(tzinfo=UTC) if present else None


def gate_pb(gate: GatePolicy | None) -> pb.GatePolicy | None:
    return pb.GatePolicy(metric=gate.metric, lower_is_better=not gate.higher_is_better, margin=gate.margin) \
        if gate else None


def gate_of(request: pb.CreateModelRequest) -> GatePolicy | None:
    if not request.HasField("gate"):
        return None
    return GatePolicy(request.gate.metric, not request.gate.lower_is_better, request.gate.margin)


def model_pb(model: RegisteredModel) -> pb.Model:
    return pb.Model(name=model.name, description=model.description, task=model.task, tags=dict(model.tags),
                    aliases=dict(model.aliases), created_at=ts(model.created_at), gate=gate_pb(model.gate),
                    created_by=model.created_by)


def artifact_pb(artifact: Artifact) -> pb.Artifact:
    return pb.Artifact(sha256=artifact.sha256, size_bytes=artifact.size_bytes, uri=artifact.uri,
                       format=artifact.format)


def version_pb(v: ModelVersion) -> pb.ModelVersion:
    return pb.ModelVersion(
        model=v.model, version=v.version, artifact=artifact_pb(v.artifact), signature=signature_pb(v.signature),
        params=dict(v.params), metrics=dict(v.metrics), tags=dict(v.tags), status=STATUS[v.status], run_id=v.run_id,
        reference_profile=v.reference_profile, created_at=ts(v.created_at), created_by=v.created_by,
        evaluations=[pb.Evaluation(holdout_sha256=e.holdout_sha256, metrics=dict(e.metrics)) for e in v.evaluations])


def signature_of(signature: common_pb2.Signature) -> Signature:
    def specs(items) -> tuple[TensorSpec, ...]:  # type: ignore[no-untyped-def]
        return tuple(TensorSpec(s.name, s.datatype, tuple(s.shape)) for s in items)
    return Signature(specs(signature.inputs), specs(signature.outputs), tuple(signature.feature_names))


def evaluation_of(evaluation: pb.Evaluation) -> Evaluation:
    return Evaluation(evaluation.holdout_sha256, dict(evaluation.metrics))


def deployment_pb(d: Deployment) -> pb.Deployment:
    return pb.Deployment(model=d.model, revision=d.revision, splits=[split_pb(s) for s in d.splits],
                         shadow_versions=list(d.shadow_versions), updated_at=ts(d.updated_at), updated_by=d.updated_by,
                         reason=d.reason, fallback_version=d.fallback_version)


def splits_of(request: pb.SetDeploymentRequest) -> tuple[TrafficSplit, ...]:
    splits = []
    for split in request.splits:
        variant = VARIANT_OF.get(split.variant)
        if variant is None and len(request.splits) == 1:
            variant = Variant.CHAMPION
        if variant is None:
            raise InvalidArgument("each split's variant must be VARIANT_CHAMPION or VARIANT_CANARY",
                                  field="splits.variant")
        splits.append(TrafficSplit(split.version, split.weight, variant))
    return tuple(splits)


def dataset_version_pb(v: DatasetVersion) -> pb.DatasetVersion:
    return pb.DatasetVersion(dataset=v.dataset, version=v.version, content_sha256=v.content_sha256,
                             row_count=v.row_count, query=v.query, created_at=ts(v.created_at), created_by=v.created_by,
                             window=common_pb2.TimeWindow(start=ts(v.window_start), end=ts(v.window_end)))


def run_pb(run: TrainingRun) -> pb.TrainingRun:
    return pb.TrainingRun(
        run_id=run.id, model=run.model, status=RUN_STATUS[run.status], params=dict(run.params),
        code_version=run.code_version, environment=dict(run.environment),
        inputs=[pb.RunInput(dataset=i.dataset, version=i.version, role=i.role) for i in run.inputs],
        metric_history=[pb.MetricPoint(name=p.name, step=p.step, value=p.value, at=ts(p.at))
                        for p in run.metric_history],
        started_at=ts(run.started_at), ended_at=ts(run.ended_at), failure_reason=run.failure_reason,
        created_by=run.created_by)


def audit_pb(e: AuditEntry) -> pb.AuditEntry:
    return pb.AuditEntry(id=e.id, at=ts(e.at), actor=e.actor, action=e.action, target=e.target, model=e.model,
                         before_json="" if e.before is None else json.dumps(e.before, sort_keys=True),
                         after_json="" if e.after is None else json.dumps(e.after, sort_keys=True),
                         reason=e.reason, trace_id=e.trace_id)


def served_pb(served: ServedAt) -> pb.ServedAt:
    return pb.ServedAt(model=served.model, at=ts(served.at), champion_version=served.champion or 0,
                       deployment=deployment_pb(served.deployment) if served.deployment else None,
                       serving_versions=served.serving_versions())
