"""Non-inferiority tests for the rollout controller.

The canary must not be worse than the champion by more than a margin. For
accuracy (a proportion) the one-sided two-proportion z-test with unpooled
variance tests H0: p_canary <= p_champion - margin against H1: p_canary >
p_champion - margin; "significantly worse" is the mirror test
H0: p_canary >= p_champion against H1: p_canary < p_champion.

>>> r = accuracy_test(canary_correct=90, canary_n=100, champion_correct=90, champion_n=100, margin=0.05)
>>> round(r.z_noninferior, 2), r.noninferior(0.05), r.worse(0.05)
(1.18, False, False)
>>> accuracy_test(canary_correct=40, canary_n=100, champion_correct=90, champion_n=100, margin=0.05).worse(0.05)
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def normal_sf(z: float) -> float:
    """Upper tail of the standard normal distribution."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


@dataclass(frozen=True)
class ComparisonResult:
    metric: str
    canary: float
    champion: float
    canary_n: int
    champion_n: int
    margin: float
    z_noninferior: float
    z_worse: float

    @property
    def p_noninferior(self) -> float:
        """p-value of H0 "canary worse than champion minus margin"."""
        return normal_sf(self.z_noninferior)

    @property
    def p_worse(self) -> float:
        """p-value of H0 "canary at least as good as the champion"."""
        return normal_sf(-self.z_worse)

    def noninferior(self, alpha: float) -> bool:
        return self.p_noninferior < alpha

    def worse(self, alpha: float) -> bool:
        return self.p_worse < alpha

    def describe(self) -> str:
        return (f"{self.metric} canary={self.canary:.4f} (n={self.canary_n}) "
                f"champion={self.champion:.4f} (n={self.champion_n}) margin={self.margin:.3f} "
                f"z_ni={self.z_noninferior:.2f} p_ni={self.p_noninferior:.4f} "
                f"z_worse={self.z_worse:.2f} p_worse={self.p_worse:.4f}")


def _se_floor(n: int) -> float:
    # With 0% or 100% accuracy the plug-in variance is 0; a continuity-style
    # floor of p(1-p) >= 0.25/n keeps the statistic finite and conservative.
    return 0.25 / max(n, 1)


def accuracy_test(*, canary_correct: float, canary_n: int, champion_correct: float, champion_n: int,
                  margin: float) -> ComparisonResult:
    if canary_n <= 0 or champion_n <= 0:
        raise ValueError(f"accuracy_test needs labelled samples on both sides (canary n={canary_n}, "
                         f"champion n={champion_n})")
    if not 0 <= margin < 1:
        raise ValueError(f"margin must lie in [0, 1), got {margin}")
    p1 = canary_correct / canary_n
    p0 = champion_correct / champion_n
    var = max(p1 * (1 - p1), _se_floor(canary_n)) / canary_n + max(p0 * (1 - p0), _se_floor(champion_n)) / champion_n
    se = math.sqrt(var)
    return ComparisonResult("accuracy", p1, p0, canary_n, champion_n, margin,
                            z_noninferior=(p1 - p0 + margin) / se, z_worse=(p1 - p0) / se)


def error_test(*, canary_mae: float, canary_sq: float, canary_n: int, champion_mae: float, champion_sq: float,
               champion_n: int, margin: float) -> ComparisonResult:
    """Welch-style z-test on mean absolute error (lower is better) for regressors.

    ``*_sq`` is the mean squared error (rmse squared): E|e|^2 = MSE, so the
    variance of |e| is MSE - MAE^2. The margin is relative to the champion's MAE.
    Statistics are sign-flipped so that larger means better, as for accuracy.
    """
    if canary_n <= 1 or champion_n <= 1:
        raise ValueError(f"error_test needs at least 2 labelled samples per side (canary n={canary_n}, "
                         f"champion n={champion_n})")
    v1 = max(canary_sq - canary_mae ** 2, 1e-12)
    v0 = max(champion_sq - champion_mae ** 2, 1e-12)
    se = math.sqrt(v1 / canary_n + v0 / champion_n)
    allowed = margin * champion_mae
    return ComparisonResult("mae", canary_mae, champion_mae, canary_n, champion_n, margin,
                            z_noninferior=(champion_mae + allowed - canary_mae) / se,
                            z_worse=(champion_mae - canary_mae) / se)
