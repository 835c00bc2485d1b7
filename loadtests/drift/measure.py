"""Detection delay, false alarms and speed of one case."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

from loadtests.drift.cases import CATEGORIES, CATEGORY_P_AFTER, CATEGORY_P_BEFORE, CASES, build
from loopline_drift_detector.domain import synthetic

N_BEFORE = 1000

#: scenario -> (input kind, stream maker(seed, n_after)); the change is at N_BEFORE.
SCENARIOS: dict[str, tuple[str, Callable[[int, int], Sequence[Any]]]] = {
    "abrupt_1sigma": ("numeric", lambda s, n: synthetic.mean_shift(s, N_BEFORE, n, 1.0).tolist()),
    "gradual_1sigma_over_500": ("numeric", lambda s, n: synthetic.gradual_mean_shift(
        s, N_BEFORE, 500, max(0, n - 500), 1.0).tolist()),
    "spread_x2": ("numeric", lambda s, n: synthetic.spread_change(s, N_BEFORE, n, 2.0).tolist()),
    "shares_shift": ("categorical", lambda s, n: synthetic.categories(
        s, CATEGORIES, CATEGORY_P_BEFORE, CATEGORY_P_AFTER, N_BEFORE, n)),
    "error_0.2_to_0.5": ("error", lambda s, n: synthetic.error_bits(s, N_BEFORE, n, 0.2, 0.5).tolist()),
    "sea_concept_switch": ("error", lambda s, n: synthetic.concept_switch(s, N_BEFORE, n)[1].tolist()),
}
#: The validation accuracy performance detectors are given, where it is not 0.8.
VALIDATION_ACCURACY = {"sea_concept_switch": 0.9}
STATIONARY: dict[str, Callable[[int], Sequence[Any]]] = {
    "numeric": lambda n: synthetic.stationary(7, n).tolist(),
    "categorical": lambda n: synthetic.categories(7, CATEGORIES, CATEGORY_P_BEFORE, CATEGORY_P_BEFORE, n, 0),
    "error": lambda n: synthetic.error_bits(7, n, 0, 0.2, 0.2).tolist(),
}


def delays(case: str, scenario: str, seeds: int, n_after: int) -> dict[str, Any]:
    """Samples seen after the change until the first firing (1 = the first changed sample)."""
    found, missed, early = [], 0, 0
    for seed in range(seeds):
        fires = build(case, VALIDATION_ACCURACY.get(scenario, 0.8))
        delay = None
        for i, x in enumerate(SCENARIOS[scenario][1](seed, n_after)):
            if fires(x):
                if i < N_BEFORE:
                    early += 1
                    continue
                delay = i - N_BEFORE + 1
                break
        if delay is None:
            missed += 1
        else:
            found.append(delay)
    ranked = sorted(found) + [math.inf] * missed  # a miss ranks after every detection
    return {"median_delay": _finite(_quantile(ranked, 0.5)), "p90_delay": _finite(_quantile(ranked, 0.9)),
            "missed": missed, "seeds": seeds, "firings_before_change": early}


def false_alarms(case: str, samples: int) -> dict[str, Any]:
    fires = build(case)
    count = sum(map(fires, STATIONARY[CASES[case][0]](samples)))
    return {"samples": samples, "count": count, "per_100k": round(count * 100_000 / samples, 3)}


def updates_per_second(case: str, samples: int = 20_000, repeats: int = 3) -> float:
    """Best of ``repeats`` single-threaded runs on stationary input (one core)."""
    data = STATIONARY[CASES[case][0]](samples)
    best = 0.0
    for _ in range(repeats):
        fires = build(case)
        start = time.perf_counter()
        for x in data:
            fires(x)
        best = max(best, samples / (time.perf_counter() - start))
    return round(best)


def _quantile(ranked: list[float], q: float) -> float:
    """Linear interpolation between order statistics, as numpy does, but inf-safe."""
    if not ranked:
        return math.inf
    pos = q * (len(ranked) - 1)
    i, frac = math.floor(pos), pos - math.floor(pos)
    if frac == 0:
        return ranked[i]
    lo, hi = ranked[i], ranked[i + 1]
    return math.inf if math.isinf(hi) else lo + (hi - lo) * frac


def _finite(x: float) -> float | None:
    return None if math.isinf(x) else round(x, 1)
