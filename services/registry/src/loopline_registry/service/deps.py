"""What every handler is given: the ports, chosen by bootstrap, and the policies."""

from __future__ import annotations

from dataclasses import dataclass

from loopline_registry.domain.model import CHAMPION, GatePolicy
from loopline_registry.service.ports import ArtifactStore, Clock, IdGenerator, UnitOfWorkFactory


@dataclass(frozen=True)
class Deps:
    uow: UnitOfWorkFactory
    artifacts: ArtifactStore
    clock: Clock
    new_id: IdGenerator
    #: Used for models created without a policy of their own.
    default_gate: GatePolicy = GatePolicy("accuracy", True, 0.0)
    #: Aliases that only move behind the promotion gate.
    gated_aliases: frozenset[str] = frozenset({CHAMPION})
    max_upload_bytes: int = 1 << 30
    download_chunk_bytes: int = 1 << 20
