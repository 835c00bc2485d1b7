"""The audit trail: who changed what, from what, to what, why, under which trace."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from loopline_registry.domain.auth import Caller
from loopline_registry.domain.deployment import Deployment


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    actor: str
    action: str
    target: str
    model: str
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    reason: str
    trace_id: str
    id: int = 0


def entry(caller: Caller, action: str, target: str, *, at: datetime, model: str = "",
          before: Mapping[str, Any] | None = None, after: Mapping[str, Any] | None = None,
          reason: str = "") -> AuditEntry:
    return AuditEntry(at, caller.actor, action, target, model, before, after, reason, caller.trace_id)


@dataclass(frozen=True)
class ServedAt:
    """What a model's deployment and champion alias were at one moment."""

    model: str
    at: datetime
    deployment: Deployment | None
    champion: int | None

    def serving_versions(self) -> list[int]:
        if self.deployment is not None:
            return self.deployment.live_versions()
        return [self.champion] if self.champion else []
