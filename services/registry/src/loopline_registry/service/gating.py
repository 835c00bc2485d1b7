"""Applying the promotion gate inside a handler's transaction."""

from __future__ import annotations

from loopline_core.errors import FailedPrecondition, InvalidArgument

from loopline_registry.domain.auth import Caller, Role, require
from loopline_registry.domain.gate import GateDecision, judge
from loopline_registry.domain.model import RegisteredModel
from loopline_registry.domain.version import ModelVersion
from loopline_registry.service.common import load_version
from loopline_registry.service.deps import Deps
from loopline_registry.service.ports import UnitOfWork


def check_override(caller: Caller, override: bool, reason: str) -> None:
    if override:
        require(caller, Role.OPERATOR, "overriding the promotion gate")
        if not reason.strip():
            raise InvalidArgument("a reason is required to override the promotion gate", field="reason")


async def enforce(uow: UnitOfWork, deps: Deps, model: RegisteredModel, candidate: ModelVersion,
                  holder: int | None, *, override: bool) -> tuple[GateDecision, bool]:
    """Judge ``candidate`` against the version ``holder``; refuse unless it passes or is overridden.

    Returns the decision and whether an override was needed to let it through.
    """
    champion = await load_version(uow, model.name, holder) if holder else None
    decision = judge(candidate, champion, model.gate or deps.default_gate)
    if not decision.passed and not override:
        raise FailedPrecondition(f"promotion gate refused: {decision.reason}", field="version")
    return decision, not decision.passed


async def verify_artifact(deps: Deps, version: ModelVersion) -> None:
    """Re-hash the stored bytes: a version only becomes deployable with an intact artifact."""
    await deps.artifacts.verify(version.artifact.sha256)
