"""The rollout controller loop: one ``tick`` looks at every deployment and acts.

It keeps no state of its own: the canary's weight and the step's start come
from the deployment (revision, ``updated_at``), so a restarted registry
resumes every rollout where it stood. Every action goes through the
registry's service layer, whose audit log records the reason, and the
reason carries the test statistics. Each action on a deployment runs in a
span of its own that continues the trace of the change it acts on
(``rollout/tracing.py``); a tick that only holds makes no span.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from loopline_registry.domain.deployment import Deployment, TrafficSplit, Variant
from loopline_registry.rollout.policy import Action, Decision, Quality, RolloutPolicy, decide
from loopline_registry.rollout.tracing import action_span

log = logging.getLogger(__name__)


class QualitySource(Protocol):
    async def quality_since(self, model: str, since: datetime) -> Sequence[Quality]: ...


class RolloutTarget(Protocol):
    async def deployments(self) -> Sequence[Deployment]: ...

    async def traceparent(self, model: str, revision: int) -> str: ...

    async def set_deployment(self, model: str, expected_revision: int, splits: tuple[TrafficSplit, ...],
                             shadow_versions: tuple[int, ...], reason: str) -> Deployment: ...

    async def promote(self, model: str, version: int, reason: str) -> None: ...


@dataclass(frozen=True)
class Outcome:
    model: str
    version: int
    mode: str
    decision: Decision


def _find(qualities: Sequence[Quality], version: int, variant: str) -> Quality | None:
    return next((q for q in qualities if q.version == version and q.variant == variant), None)


class RolloutController:
    def __init__(self, target: RolloutTarget, quality: QualitySource, policy: RolloutPolicy, *,
                 shadow_models: frozenset[str] = frozenset(), default_mode: str = "canary",
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        if default_mode not in ("canary", "shadow"):
            raise ValueError(f"rollout mode must be 'canary' or 'shadow', got {default_mode!r}")
        self._target, self._quality, self._policy = target, quality, policy
        self._shadow_models, self._default_mode, self._clock = shadow_models, default_mode, clock

    def mode_for(self, model: str) -> str:
        return "shadow" if model in self._shadow_models else self._default_mode

    async def tick(self) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for deployment in await self._target.deployments():
            try:
                outcome = await self._one(deployment)
            except Exception:  # one model's trouble must not stop the others' rollouts
                log.exception("rollout of %s failed this round", deployment.model)
                continue
            if outcome is not None:
                outcomes.append(outcome)
        return outcomes

    async def run(self, interval_s: float) -> None:
        """Tick forever; a round that fails (feedback collector down, database busy) is retried next time."""
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the loop outlives transient failures
                log.warning("rollout round failed, retrying in %.1fs: %s", interval_s, exc)
            await asyncio.sleep(interval_s)

    @asynccontextmanager
    async def _acting(self, dep: Deployment, version: int, action: str, reason: str) -> AsyncIterator[None]:
        parent = await self._target.traceparent(dep.model, dep.revision)
        with action_span(parent, action, model=dep.model, version=version, revision=dep.revision, reason=reason):
            yield

    async def _one(self, dep: Deployment) -> Outcome | None:
        champion = next((s for s in dep.splits if s.variant == Variant.CHAMPION), None)
        canary = next((s for s in dep.splits if s.variant == Variant.CANARY and s.weight > 0), None)
        if champion is None:
            return None
        if canary is not None:
            if self.mode_for(dep.model) == "shadow":
                return await self._to_shadow(dep, champion, canary)
            return await self._canary(dep, champion, canary)
        if dep.shadow_versions and champion.weight >= 1.0 - 1e-9:
            return await self._shadow(dep, champion, dep.shadow_versions[0])
        return None

    async def _to_shadow(self, dep: Deployment, champion: TrafficSplit, canary: TrafficSplit) -> Outcome:
        shadows = tuple(dict.fromkeys((*dep.shadow_versions, canary.version)))
        reason = f"rollout: {dep.model} evaluates v{canary.version} in shadow instead of a canary"
        async with self._acting(dep, canary.version, "shadow", reason):
            await self._target.set_deployment(dep.model, dep.revision, (
                TrafficSplit(champion.version, 1.0, Variant.CHAMPION),), shadows, reason)
        return Outcome(dep.model, canary.version, "shadow", Decision(Action.HOLD, 0.0, reason))

    async def _canary(self, dep: Deployment, champion: TrafficSplit, canary: TrafficSplit) -> Outcome:
        qualities = await self._quality.quality_since(dep.model, dep.updated_at)
        decision = decide(self._policy, weight=canary.weight,
                          candidate=_find(qualities, canary.version, "canary"),
                          champion=_find(qualities, champion.version, "champion"),
                          step_started=dep.updated_at, now=self._clock(), mode="canary")
        model, reason = dep.model, f"rollout v{canary.version}: {decision.reason}"
        if decision.action == Action.HOLD:
            return Outcome(model, canary.version, "canary", decision)
        if decision.action == Action.STEP:
            splits = (TrafficSplit(champion.version, round(1.0 - decision.weight, 6), Variant.CHAMPION),
                      TrafficSplit(canary.version, decision.weight, Variant.CANARY))
        elif decision.action == Action.PROMOTE:
            splits = (TrafficSplit(canary.version, 1.0, Variant.CHAMPION),)
        else:
            splits = (TrafficSplit(champion.version, 1.0, Variant.CHAMPION),)
        async with self._acting(dep, canary.version, decision.action.value, reason):
            if decision.action == Action.PROMOTE:
                await self._target.promote(model, canary.version, reason)
            await self._target.set_deployment(model, dep.revision, splits, dep.shadow_versions, reason)
        log.info("%s", reason)
        return Outcome(model, canary.version, "canary", decision)

    async def _shadow(self, dep: Deployment, champion: TrafficSplit, shadow: int) -> Outcome:
        qualities = await self._quality.quality_since(dep.model, dep.updated_at)
        decision = decide(self._policy, weight=0.0, candidate=_find(qualities, shadow, "shadow"),
                          champion=_find(qualities, champion.version, "champion"),
                          step_started=dep.updated_at, now=self._clock(), mode="shadow")
        model, reason = dep.model, f"rollout v{shadow}: {decision.reason}"
        rest = tuple(v for v in dep.shadow_versions if v != shadow)
        if decision.action not in (Action.PROMOTE, Action.ROLLBACK):
            return Outcome(model, shadow, "shadow", decision)
        async with self._acting(dep, shadow, decision.action.value, reason):
            if decision.action == Action.PROMOTE:
                await self._target.promote(model, shadow, reason)
                await self._target.set_deployment(model, dep.revision, (TrafficSplit(shadow, 1.0, Variant.CHAMPION),),
                                                  rest, reason)
            else:
                await self._target.set_deployment(model, dep.revision, dep.splits, rest, reason)
        log.info("%s", reason)
        return Outcome(model, shadow, "shadow", decision)
