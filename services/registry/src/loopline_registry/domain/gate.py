"""The promotion gate: evidence that a candidate beats the champion on the same holdout.

Evaluations are keyed by the content hash of the holdout dataset version, so two
numbers are only ever compared when they were measured on the same rows. The
candidate must improve the policy's metric by at least the margin (and by more
than nothing) on every holdout both versions were evaluated on, and there must be
at least one such holdout.
"""

from __future__ import annotations

from dataclasses import dataclass

from loopline_registry.domain.model import GatePolicy
from loopline_registry.domain.version import ModelVersion


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reason: str


def judge(candidate: ModelVersion, champion: ModelVersion | None, policy: GatePolicy) -> GateDecision:
    if champion is None:
        return GateDecision(True, "there is no champion to beat yet")
    if candidate.version == champion.version:
        return GateDecision(True, "the candidate is the champion")
    metric = policy.metric
    common = [e.holdout_sha256 for e in champion.evaluations
              if metric in e.metrics and metric in candidate.evaluation_on(e.holdout_sha256)]
    if not common:
        return GateDecision(False, (
            f"version {candidate.version} has no {metric!r} evaluation on a holdout that champion version "
            f"{champion.version} was evaluated on; record one (same holdout sha256) or override with a reason"))
    for holdout in common:
        theirs = champion.evaluation_on(holdout)[metric]
        ours = candidate.evaluation_on(holdout)[metric]
        gain = ours - theirs if policy.higher_is_better else theirs - ours
        if gain <= 0 or gain < policy.margin:
            return GateDecision(False, (
                f"version {candidate.version} does not beat champion version {champion.version} on holdout "
                f"{holdout[:12]}: {metric} {ours:.6g} vs {theirs:.6g}, needs an improvement of at least "
                f"{policy.margin:g}"))
    return GateDecision(True, f"beats version {champion.version} on {len(common)} holdout(s) by >= {policy.margin:g}")
