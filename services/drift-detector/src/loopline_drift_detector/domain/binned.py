"""Windowed PSI, Jensen-Shannon and χ² on the reference's bins or categories.

Numeric features use the reference's equal-frequency bins; categorical features
use its known categories plus one bin for everything else (unseen categories
included). A sliding window keeps bin counts; every ``every`` samples, once the
window is full, the statistic is compared with its threshold. PSI and JS use the
customary thresholds (0.2 and 0.1); with the default window of 500 both sit far
above what sampling noise produces (n·PSI is about χ² with bins-1 degrees of
freedom). χ² uses the critical value at ``alpha``.

>>> from loopline_core.profiles.reference import CategoricalProfile
>>> reference = CategoricalProfile(1000, {"free": 700, "pro": 300})
>>> detector = WindowedPSI(reference, window=100, every=10)
>>> for i in range(400):
...     detector.update("free" if i % 10 < (7 if i < 200 else 3) else "pro")
...     if detector.drift_detected:
...         print(f"change at {i}: PSI={detector.summary().statistic:.3f}")
...         break
change at 259: PSI=0.242
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque

import numpy as np

from loopline_drift_detector.domain.detector import Detector, Summary
from loopline_drift_detector.domain.divergence import chi2_critical, chi_square, js_distance, psi
from loopline_core.profiles.reference import FeatureProfile, NumericProfile
from loopline_core.profiles.values import CategoryGuard, NumberGuard


class _Binned(Detector):
    accepts = "numeric or categorical"

    def __init__(self, reference: FeatureProfile, window: int, every: int, limit: float) -> None:
        if isinstance(reference, NumericProfile):
            super().__init__(NumberGuard(reference.valid_min, reference.valid_max))
            self._edges: list[float] | None = list(reference.bin_edges)
            bounds = ["-inf", *map(_short, reference.bin_edges), "inf"]
            self._labels = [f"[{lo},{hi})" for lo, hi in zip(bounds, bounds[1:])]
        else:
            super().__init__(CategoryGuard())
            self._edges = None
            self._index = {c: i for i, c in enumerate(reference.frequencies)}
            self._labels = [f"[{c}]" for c in (*reference.frequencies, "(other)")]
        self.reference = reference
        self.window = window
        self.every = every
        self._limit = limit
        self._ref_p = reference.bin_probabilities()
        self._bins: deque[int] = deque(maxlen=window)
        self._restart()

    def _restart(self) -> None:
        self._bins.clear()
        self._counts = [0] * len(self._ref_p)
        self._since_check = 0
        self._statistic = 0.0

    def _learn(self, value: float | str) -> bool:
        if self._edges is not None:
            b = bisect_right(self._edges, value)
        else:
            b = self._index.get(value, len(self._ref_p) - 1)
        if len(self._bins) == self.window:
            self._counts[self._bins[0]] -= 1
        self._bins.append(b)
        self._counts[b] += 1
        self._since_check += 1
        if self._since_check < self.every or len(self._bins) < self.window:
            return False
        self._since_check = 0
        self._statistic = self._measure(np.asarray(self._counts, dtype=float))
        return self._statistic > self._limit

    def _measure(self, counts: np.ndarray) -> float:
        raise NotImplementedError

    def summary(self) -> Summary:
        n = max(1, len(self._bins))
        moved = sorted(range(len(self._counts)),
                       key=lambda i: -abs(self._counts[i] / n - self._ref_p[i]))[:3]
        return self._summary(
            statistic=self._statistic, threshold=self._limit, window=len(self._bins),
            reference_count=self.reference.count,
            reference={f"share{self._labels[i]}": float(self._ref_p[i]) for i in moved},
            current={f"share{self._labels[i]}": self._counts[i] / n for i in moved})


class WindowedPSI(_Binned):
    name = "psi"

    def __init__(self, reference: FeatureProfile, window: int = 500, every: int = 25,
                 threshold: float = 0.2) -> None:
        self.threshold = threshold
        super().__init__(reference, window, every, threshold)

    def _measure(self, counts: np.ndarray) -> float:
        return psi(self._ref_p, counts)


class WindowedJS(_Binned):
    name = "js"

    def __init__(self, reference: FeatureProfile, window: int = 500, every: int = 25,
                 threshold: float = 0.1) -> None:
        self.threshold = threshold
        super().__init__(reference, window, every, threshold)

    def _measure(self, counts: np.ndarray) -> float:
        return js_distance(self._ref_p, counts)


class WindowedChiSquare(_Binned):
    name = "chi2"

    def __init__(self, reference: FeatureProfile, window: int = 500, every: int = 25,
                 alpha: float = 1e-6) -> None:
        self.alpha = alpha
        dof = max(1, len(reference.bin_probabilities()) - 1)
        super().__init__(reference, window, every, chi2_critical(alpha, dof))

    @property
    def threshold(self) -> float:
        """The critical value of χ², from ``alpha`` and the number of bins."""
        return self._limit

    def _measure(self, counts: np.ndarray) -> float:
        return chi_square(self._ref_p, counts)


def _short(x: float) -> str:
    return f"{x:.4g}"
