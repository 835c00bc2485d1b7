"""Facts the registry publishes on loopline.models.v1 (key: model name).

Plain data here; the outbox adapter turns them into loopline.events.v1 messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from loopline_registry.domain.deployment import TrafficSplit
from loopline_registry.domain.version import Signature


@dataclass(frozen=True)
class VersionRegistered:
    model: str
    version: int
    artifact_uri: str
    artifact_sha256: str
    format: str
    signature: Signature
    run_id: str
    registered_at: datetime

    @property
    def subject(self) -> str:
        return f"{self.model}/{self.version}"


@dataclass(frozen=True)
class VersionPromoted:
    model: str
    version: int
    alias: str
    previous_version: int
    actor: str
    reason: str
    gate_overridden: bool
    promoted_at: datetime

    @property
    def subject(self) -> str:
        return f"{self.model}/{self.version}"


@dataclass(frozen=True)
class DeploymentChanged:
    model: str
    revision: int
    splits: tuple[TrafficSplit, ...]
    shadow_versions: tuple[int, ...]
    actor: str
    reason: str
    changed_at: datetime

    @property
    def subject(self) -> str:
        return self.model


@dataclass(frozen=True)
class RolledBack:
    model: str
    from_version: int
    to_version: int
    reason: str
    actor: str
    rolled_back_at: datetime

    @property
    def subject(self) -> str:
        return f"{self.model}/{self.to_version}"


Event = VersionRegistered | VersionPromoted | DeploymentChanged | RolledBack
