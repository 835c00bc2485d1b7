"""Training runs: what was trained from which data, how, and how it went."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from loopline_core.errors import FailedPrecondition, InvalidArgument

from loopline_registry.domain.names import check_text

INPUT_ROLES = ("train", "validation", "holdout", "test")


class RunStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


@dataclass(frozen=True)
class RunInput:
    dataset: str
    version: int
    role: str


@dataclass(frozen=True)
class MetricPoint:
    name: str
    step: int
    value: float
    at: datetime


@dataclass(frozen=True)
class TrainingRun:
    id: str
    model: str
    status: RunStatus
    params: Mapping[str, str]
    code_version: str
    environment: Mapping[str, str]
    inputs: tuple[RunInput, ...]
    started_at: datetime
    created_by: str
    ended_at: datetime | None = None
    failure_reason: str = ""
    metric_history: tuple[MetricPoint, ...] = ()


def check_inputs(inputs: tuple[RunInput, ...]) -> tuple[RunInput, ...]:
    for item in inputs:
        if item.role not in INPUT_ROLES:
            raise InvalidArgument(f"input role {item.role!r} is not one of {', '.join(INPUT_ROLES)}",
                                  field="inputs.role")
    if len({(i.dataset, i.version) for i in inputs}) != len(inputs):
        raise InvalidArgument("a dataset version is listed twice", field="inputs")
    return inputs


def check_points(points: tuple[MetricPoint, ...]) -> tuple[MetricPoint, ...]:
    if len(points) > 10_000:
        raise InvalidArgument("at most 10000 metric points per call", field="metrics")
    for point in points:
        if not math.isfinite(point.value) or point.step < 0:
            raise InvalidArgument(f"metric {point.name!r}: finite values and steps >= 0", field="metrics")
    return points


def finish(run: TrainingRun, status: RunStatus, *, at: datetime, reason: str) -> TrainingRun:
    if run.status != RunStatus.RUNNING:
        raise FailedPrecondition(f"run {run.id} is already {run.status.value}", field="status")
    if status == RunStatus.RUNNING:
        raise InvalidArgument("a run finishes as completed or failed", field="status")
    return replace(run, status=status, ended_at=at, failure_reason=check_text(reason, "reason", 4096))
