"""Model versions: an artifact plus what is known about it, and its lifecycle."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from loopline_core.errors import FailedPrecondition, InvalidArgument

from loopline_registry.domain.names import check_metrics, check_name, check_sha256

#: Open Inference Protocol datatypes (what Triton calls them).
DATATYPES = frozenset({"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
                       "FP16", "FP32", "FP64", "BF16", "BYTES"})
FORMATS = ("torchscript", "onnx")


class VersionStatus(StrEnum):
    CANDIDATE = "candidate"
    STAGED = "staged"
    PRODUCTION = "production"
    ARCHIVED = "archived"


_TRANSITIONS = {
    VersionStatus.CANDIDATE: {VersionStatus.STAGED, VersionStatus.PRODUCTION, VersionStatus.ARCHIVED},
    VersionStatus.STAGED: {VersionStatus.CANDIDATE, VersionStatus.PRODUCTION, VersionStatus.ARCHIVED},
    VersionStatus.PRODUCTION: {VersionStatus.STAGED, VersionStatus.ARCHIVED},
    VersionStatus.ARCHIVED: set(),
}


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Signature:
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()
    feature_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Artifact:
    sha256: str
    size_bytes: int
    format: str
    uri: str


@dataclass(frozen=True)
class Evaluation:
    """Metrics measured on one holdout, named by the holdout's content hash."""

    holdout_sha256: str
    metrics: Mapping[str, float]


@dataclass(frozen=True)
class ModelVersion:
    model: str
    version: int
    artifact: Artifact
    signature: Signature
    params: Mapping[str, str]
    metrics: Mapping[str, float]
    tags: Mapping[str, str]
    status: VersionStatus
    run_id: str
    reference_profile: bytes
    evaluations: tuple[Evaluation, ...]
    created_at: datetime
    created_by: str

    def evaluation_on(self, holdout_sha256: str) -> Mapping[str, float]:
        for evaluation in self.evaluations:
            if evaluation.holdout_sha256 == holdout_sha256:
                return evaluation.metrics
        return {}


def check_signature(signature: Signature) -> Signature:
    for side, specs in (("inputs", signature.inputs), ("outputs", signature.outputs)):
        if len(specs) > 256:
            raise InvalidArgument(f"signature.{side} has more than 256 tensors", field=f"signature.{side}")
        for spec in specs:
            check_name(spec.name, f"signature.{side}.name")
            if spec.datatype not in DATATYPES:
                raise InvalidArgument(f"signature.{side}.{spec.name}: datatype {spec.datatype!r} is not one of "
                                      f"{', '.join(sorted(DATATYPES))}", field=f"signature.{side}.datatype")
            if len(spec.shape) > 16 or any(d < -1 or d == 0 for d in spec.shape):
                raise InvalidArgument(f"signature.{side}.{spec.name}: dimensions are positive or -1 (variable), "
                                      "at most 16 of them", field=f"signature.{side}.shape")
    if len(signature.feature_names) > 4096:
        raise InvalidArgument("signature.feature_names has more than 4096 names", field="signature.feature_names")
    return signature


def check_evaluations(evaluations: Sequence[Evaluation]) -> tuple[Evaluation, ...]:
    seen: set[str] = set()
    checked = []
    for evaluation in evaluations:
        holdout = check_sha256(evaluation.holdout_sha256, "evaluations.holdout_sha256")
        if holdout in seen:
            raise InvalidArgument(f"holdout {holdout} is evaluated twice", field="evaluations.holdout_sha256")
        seen.add(holdout)
        checked.append(Evaluation(holdout, check_metrics(evaluation.metrics, "evaluations.metrics")))
    return tuple(checked)


def transition(version: ModelVersion, to: VersionStatus) -> ModelVersion:
    if to == version.status:
        return version
    if to not in _TRANSITIONS[version.status]:
        raise FailedPrecondition(
            f"{version.model} version {version.version} is {version.status.value} and cannot become {to.value}",
            field="status")
    return replace(version, status=to)


def check_usable(version: ModelVersion, purpose: str) -> None:
    if version.status == VersionStatus.ARCHIVED:
        raise FailedPrecondition(
            f"{version.model} version {version.version} is archived and cannot be {purpose}", field="version")
