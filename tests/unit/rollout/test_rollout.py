from __future__ import annotations

import asyncio
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from loopline_registry.domain.deployment import Deployment, TrafficSplit, Variant
from loopline_registry.rollout.controller import RolloutController
from loopline_registry.rollout.policy import Action, Quality, RolloutPolicy, decide
from loopline_registry.rollout.stats import accuracy_test, error_test

T0 = datetime(2026, 1, 1, tzinfo=UTC)
POLICY = RolloutPolicy(min_samples=200, alpha=0.05, margin=0.02, step_timeout=timedelta(minutes=5))


def test_equal_accuracy_with_enough_samples_is_noninferior_not_worse() -> None:
    r = accuracy_test(canary_correct=1800, canary_n=2000, champion_correct=1800, champion_n=2000, margin=0.02)
    assert r.noninferior(0.05) and not r.worse(0.05)


def test_much_worse_canary_is_worse() -> None:
    r = accuracy_test(canary_correct=120, canary_n=200, champion_correct=180, champion_n=200, margin=0.02)
    assert r.worse(0.05) and not r.noninferior(0.05)
    assert "p_worse=" in r.describe()


def test_perfect_accuracy_has_finite_statistic() -> None:
    r = accuracy_test(canary_correct=300, canary_n=300, champion_correct=300, champion_n=300, margin=0.02)
    assert r.noninferior(0.05)


def test_false_alarm_rate_of_worse_test_is_near_alpha() -> None:
    rng = random.Random(7)
    alarms = 0
    for _ in range(400):
        a = sum(rng.random() < 0.8 for _ in range(300))
        b = sum(rng.random() < 0.8 for _ in range(300))
        alarms += accuracy_test(canary_correct=a, canary_n=300, champion_correct=b, champion_n=300,
                                margin=0.02).worse(0.05)
    assert alarms / 400 < 0.09


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ValueError, match="canary n=0"):
        accuracy_test(canary_correct=0, canary_n=0, champion_correct=1, champion_n=1, margin=0.0)
    with pytest.raises(ValueError, match="last rollout step"):
        RolloutPolicy(steps=(0.1, 0.5))
    with pytest.raises(ValueError, match="increasing"):
        RolloutPolicy(steps=(0.5, 0.1, 1.0))


def test_regression_error_test() -> None:
    worse = error_test(canary_mae=2.0, canary_sq=5.0, canary_n=500, champion_mae=1.0, champion_sq=1.5,
                       champion_n=500, margin=0.05)
    assert worse.worse(0.05)
    same = error_test(canary_mae=1.0, canary_sq=1.5, canary_n=2000, champion_mae=1.0, champion_sq=1.5,
                      champion_n=2000, margin=0.05)
    assert same.noninferior(0.05)


def q(version: int, variant: str, n: int, acc: float) -> Quality:
    return Quality(version, variant, n, {"accuracy": acc})


def test_decide_holds_until_min_samples_then_rolls_back_on_timeout() -> None:
    d = decide(POLICY, weight=0.1, candidate=q(2, "canary", 50, 0.9), champion=q(1, "champion", 500, 0.9),
               step_started=T0, now=T0 + timedelta(seconds=30))
    assert d.action == Action.HOLD and "need 200" in d.reason
    d = decide(POLICY, weight=0.1, candidate=None, champion=q(1, "champion", 500, 0.9),
               step_started=T0, now=T0 + timedelta(minutes=6))
    assert d.action == Action.ROLLBACK and "failing" in d.reason


def test_decide_steps_then_promotes() -> None:
    d = decide(POLICY, weight=0.1, candidate=q(2, "canary", 1000, 0.93), champion=q(1, "champion", 3000, 0.9),
               step_started=T0, now=T0)
    assert d.action == Action.STEP and d.weight == 0.25 and "z_ni=" in d.reason
    d = decide(POLICY, weight=0.5, candidate=q(2, "canary", 1000, 0.93), champion=q(1, "champion", 1000, 0.9),
               step_started=T0, now=T0)
    assert d.action == Action.PROMOTE


class FakeTarget:
    def __init__(self, dep: Deployment) -> None:
        self.dep = dep
        self.promoted: list[tuple[int, str]] = []
        self.reasons: list[str] = []

    async def deployments(self) -> list[Deployment]:
        return [self.dep]

    async def traceparent(self, model: str, revision: int) -> str:
        return ""

    async def set_deployment(self, model: str, expected_revision: int, splits: tuple[TrafficSplit, ...],
                             shadow_versions: tuple[int, ...], reason: str) -> Deployment:
        assert expected_revision == self.dep.revision
        self.dep = replace(self.dep, revision=self.dep.revision + 1, splits=splits,
                           shadow_versions=shadow_versions, updated_at=self.dep.updated_at + timedelta(seconds=1),
                           reason=reason)
        self.reasons.append(reason)
        return self.dep

    async def promote(self, model: str, version: int, reason: str) -> None:
        self.promoted.append((version, reason))


class FakeQuality:
    """Simulated live labelled traffic: accuracy per version, volume proportional to weight."""

    def __init__(self, target: FakeTarget, accuracy: dict[int, float], per_tick: int = 2000) -> None:
        self.target, self.accuracy, self.per_tick = target, accuracy, per_tick
        self.seen_since: list[datetime] = []

    async def quality_since(self, model: str, since: datetime) -> list[Quality]:
        self.seen_since.append(since)
        rng = random.Random(len(self.seen_since))
        out = []
        for split in self.target.dep.splits:
            n = int(self.per_tick * split.weight)
            correct = sum(rng.random() < self.accuracy[split.version] for _ in range(n))
            out.append(Quality(split.version, split.variant.value, n, {"accuracy": correct / n} if n else {}))
        for v in self.target.dep.shadow_versions:
            n = self.per_tick
            correct = sum(rng.random() < self.accuracy[v] for _ in range(n))
            out.append(Quality(v, "shadow", n, {"accuracy": correct / n}))
        return out


def canary_deployment(weight: float = 0.1) -> Deployment:
    return Deployment("m", 3, (TrafficSplit(1, 1 - weight, Variant.CHAMPION), TrafficSplit(2, weight, Variant.CANARY)),
                      (), T0, "trainer", "canary requested")


def run_ticks(controller: RolloutController, n: int) -> None:
    async def go() -> None:
        for _ in range(n):
            await controller.tick()
    asyncio.run(go())


def test_good_canary_is_stepped_up_and_promoted() -> None:
    target = FakeTarget(canary_deployment())
    quality = FakeQuality(target, {1: 0.80, 2: 0.92})
    run_ticks(RolloutController(target, quality, POLICY, clock=lambda: T0), 6)
    assert target.promoted and target.promoted[0][0] == 2
    assert target.dep.splits == (TrafficSplit(2, 1.0, Variant.CHAMPION),)
    weights = [r for r in target.reasons if "stepping to" in r]
    assert len(weights) == 2 and "0.25" in weights[0] and "0.5" in weights[1]
    assert quality.seen_since[0] == T0  # the step's start is the deployment's last change


def test_bad_canary_is_rolled_back_with_statistics_in_reason() -> None:
    target = FakeTarget(canary_deployment())
    quality = FakeQuality(target, {1: 0.90, 2: 0.50})
    run_ticks(RolloutController(target, quality, POLICY, clock=lambda: T0), 3)
    assert not target.promoted
    assert target.dep.splits == (TrafficSplit(1, 1.0, Variant.CHAMPION),)
    assert "significantly worse" in target.reasons[-1] and "p_worse=" in target.reasons[-1]


def test_restart_resumes_from_deployment() -> None:
    target = FakeTarget(canary_deployment(0.5))  # a controller restarted mid-rollout
    quality = FakeQuality(target, {1: 0.80, 2: 0.92})
    run_ticks(RolloutController(target, quality, POLICY, clock=lambda: T0), 1)
    assert target.promoted and target.dep.splits[0].version == 2


def test_shadow_mode_moves_canary_to_shadow_then_promotes() -> None:
    target = FakeTarget(canary_deployment())
    quality = FakeQuality(target, {1: 0.80, 2: 0.92})
    controller = RolloutController(target, quality, POLICY, shadow_models=frozenset({"m"}), clock=lambda: T0)
    run_ticks(controller, 1)
    assert target.dep.splits == (TrafficSplit(1, 1.0, Variant.CHAMPION),) and target.dep.shadow_versions == (2,)
    run_ticks(controller, 1)
    assert target.promoted[0][0] == 2 and target.dep.shadow_versions == ()
    assert target.dep.splits == (TrafficSplit(2, 1.0, Variant.CHAMPION),)


def test_bad_shadow_is_dropped() -> None:
    dep = Deployment("m", 1, (TrafficSplit(1, 1.0, Variant.CHAMPION),), (2,), T0, "trainer", "")
    target = FakeTarget(dep)
    run_ticks(RolloutController(target, FakeQuality(target, {1: 0.9, 2: 0.5}), POLICY, clock=lambda: T0), 1)
    assert target.dep.shadow_versions == () and not target.promoted
    assert "shadow significantly worse" in target.reasons[-1]


def test_unknown_mode_is_rejected() -> None:
    target = FakeTarget(canary_deployment())
    with pytest.raises(ValueError, match="rollout mode"):
        RolloutController(target, FakeQuality(target, {}), POLICY, default_mode="blue-green")


def test_a_retired_deployment_is_left_alone(caplog: pytest.LogCaptureFixture) -> None:
    """Retired in the registry (a revision with no splits): nothing to roll out, nothing changed."""
    target = FakeTarget(Deployment("m", 4, (), (), T0, "operator", "withdrawn"))
    quality = FakeQuality(target, {})
    outcomes = asyncio.run(RolloutController(target, quality, POLICY, clock=lambda: T0).tick())
    assert not outcomes and target.dep.revision == 4 and not target.reasons and not quality.seen_since
    assert not [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")]  # not a failed round either
