"""A training run as the trainer tracks it: one per request id, one running per model."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

_NAMESPACE = uuid.UUID("6c8a4f0e-6f1d-4a53-9d0e-7d3f3c1e2a90")


class RunStatus(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


def run_id_for(model: str, request_id: str) -> str:
    """Derived from the request, so a redelivered request or a restart finds the same run."""
    return f"run-{uuid.uuid5(_NAMESPACE, f'{model}/{request_id}')}"


@dataclass(frozen=True)
class RunRequest:
    model: str
    request_id: str
    reason: str = ""
    params: dict[str, str] = field(default_factory=dict)
    data_since: datetime | None = None
    #: W3C traceparent of the request, so a resumed run continues its trace.
    traceparent: str = ""


@dataclass
class Run:
    run_id: str
    request: RunRequest
    status: RunStatus = RunStatus.QUEUED
    metrics: dict[str, float] = field(default_factory=dict)
    version: int = 0
    error: str = ""
    gate_passed: bool = False
    gate_reason: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def model(self) -> str:
        return self.request.model
