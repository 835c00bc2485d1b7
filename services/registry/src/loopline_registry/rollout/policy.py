"""Rollout decisions: pure functions from live quality to the next action.

Each step is judged on the labelled traffic served since that step began
(the deployment's last change), so every step collects fresh evidence and
the controller's state is the deployment itself: a restarted registry picks
up where it left off.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from loopline_registry.rollout.stats import ComparisonResult, accuracy_test, error_test


class Action(StrEnum):
    HOLD = "hold"
    STEP = "step"
    PROMOTE = "promote"
    ROLLBACK = "rollback"


@dataclass(frozen=True)
class Quality:
    """Live quality of one version and variant over a window."""

    version: int
    variant: str
    labelled: int
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class RolloutPolicy:
    steps: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0)
    min_samples: int = 100
    alpha: float = 0.05
    margin: float = 0.02
    step_timeout: timedelta = timedelta(minutes=10)

    def __post_init__(self) -> None:
        if not self.steps or any(not 0 < w <= 1 for w in self.steps) or list(self.steps) != sorted(self.steps):
            raise ValueError(f"rollout steps must be increasing weights in (0, 1], got {self.steps}")
        if self.steps[-1] != 1.0:
            raise ValueError(f"the last rollout step must be 1.0, got {self.steps[-1]}")
        if self.min_samples < 2:
            raise ValueError(f"rollout min_samples must be at least 2, got {self.min_samples}")
        if not 0 < self.alpha < 0.5:
            raise ValueError(f"rollout alpha must lie in (0, 0.5), got {self.alpha}")

    def next_weight(self, current: float) -> float:
        for w in self.steps:
            if w > current + 1e-9:
                return w
        return 1.0


@dataclass(frozen=True)
class Decision:
    action: Action
    weight: float
    reason: str
    comparison: ComparisonResult | None = None


def compare(candidate: Quality, champion: Quality, margin: float) -> ComparisonResult:
    m1, m0 = candidate.metrics, champion.metrics
    if "accuracy" in m1 and "accuracy" in m0:
        return accuracy_test(canary_correct=m1["accuracy"] * candidate.labelled, canary_n=candidate.labelled,
                             champion_correct=m0["accuracy"] * champion.labelled, champion_n=champion.labelled,
                             margin=margin)
    if all(k in m for m in (m1, m0) for k in ("mae", "rmse")):
        return error_test(canary_mae=m1["mae"], canary_sq=m1["rmse"] ** 2, canary_n=candidate.labelled,
                          champion_mae=m0["mae"], champion_sq=m0["rmse"] ** 2, champion_n=champion.labelled,
                          margin=margin)
    raise ValueError(f"no comparable metric: candidate has {sorted(m1)}, champion has {sorted(m0)} "
                     "(need accuracy, or mae and rmse)")


def decide(policy: RolloutPolicy, *, weight: float, candidate: Quality | None, champion: Quality | None,
           step_started: datetime, now: datetime, mode: str = "canary") -> Decision:
    """What to do with a candidate at ``weight`` given the quality since the step began."""
    n1 = candidate.labelled if candidate else 0
    n0 = champion.labelled if champion else 0
    age = now - step_started
    if n1 < policy.min_samples or n0 < policy.min_samples or candidate is None or champion is None:
        if age > policy.step_timeout:
            return Decision(Action.ROLLBACK, 0.0,
                            f"{mode} failing: only {n1} labelled candidate and {n0} champion predictions "
                            f"after {age.total_seconds():.0f}s (need {policy.min_samples} each)")
        return Decision(Action.HOLD, weight, f"waiting for labels: candidate n={n1}, champion n={n0}, "
                                             f"need {policy.min_samples}")
    try:
        result = compare(candidate, champion, policy.margin)
    except ValueError as exc:
        return Decision(Action.ROLLBACK, 0.0, f"{mode} failing: {exc}")
    stats = result.describe() + f" alpha={policy.alpha}"
    if result.worse(policy.alpha):
        return Decision(Action.ROLLBACK, 0.0, f"{mode} significantly worse than champion: {stats}", result)
    if result.noninferior(policy.alpha):
        target = 1.0 if mode == "shadow" else policy.next_weight(weight)
        if target >= 1.0:
            return Decision(Action.PROMOTE, 1.0, f"{mode} non-inferior at weight {weight:g}, promoting: {stats}",
                            result)
        return Decision(Action.STEP, target, f"{mode} non-inferior at weight {weight:g}, stepping to "
                                             f"{target:g}: {stats}", result)
    if age > policy.step_timeout:
        return Decision(Action.ROLLBACK, 0.0, f"{mode} not shown non-inferior within "
                                              f"{policy.step_timeout.total_seconds():.0f}s: {stats}", result)
    return Decision(Action.HOLD, weight, f"inconclusive, collecting more labels: {stats}", result)
