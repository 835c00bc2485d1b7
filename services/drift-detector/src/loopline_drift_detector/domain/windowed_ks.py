"""Kolmogorov-Smirnov distance between a sliding window and the reference CDF.

Every ``every`` samples, once the window is full, D = sup |F_window - F_ref| is
compared with the two-sample critical value at ``alpha``. That is one test per
check, so the false alarms per 100k samples are at most alpha·100k/every (the
union bound: 0.02 with the defaults); overlapping windows make the real figure
much lower. It sees changes of shape and spread that a mean detector misses;
it is slower on a mean shift.

>>> import random
>>> from loopline_core.profiles.reference import NumericProfile
>>> rng = random.Random(3)
>>> reference = NumericProfile.from_values([rng.gauss(0, 1) for _ in range(5000)])
>>> detector = WindowedKS(reference)
>>> round(detector.threshold, 4)
0.1468
>>> for i in range(2000):  # the spread doubles at 1000, the mean stays
...     detector.update(rng.gauss(0, 1 if i < 1000 else 2))
...     if detector.drift_detected:
...         print(f"change at {i}: D={detector.summary().statistic:.3f}")
...         break
change at 1299: D=0.158
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from loopline_drift_detector.domain.detector import Detector, Summary
from loopline_drift_detector.domain.divergence import ks_critical, ks_statistic, ks_steps
from loopline_core.profiles.reference import NumericProfile
from loopline_core.profiles.values import NumberGuard


class WindowedKS(Detector):
    name = "ks"
    accepts = "numeric"

    def __init__(self, reference: NumericProfile, window: int = 300, alpha: float = 1e-5,
                 every: int = 50) -> None:
        super().__init__(NumberGuard(reference.valid_min, reference.valid_max))
        self.reference = reference
        self.window = window
        self.alpha = alpha
        self.every = every
        self._threshold = ks_critical(alpha, window, reference.count)
        self._ring = [0.0] * window  # the window, in no particular order
        self._steps = ks_steps(window)
        self._restart()

    def _restart(self) -> None:
        self._filled = 0
        self._at = 0
        self._since_check = 0
        self._statistic = 0.0

    def _learn(self, x: float) -> bool:
        self._ring[self._at] = x
        self._at = (self._at + 1) % self.window
        self._filled = min(self._filled + 1, self.window)
        self._since_check += 1
        if self._since_check < self.every or self._filled < self.window:
            return False
        self._since_check = 0
        window = np.sort(np.array(self._ring))
        self._statistic = ks_statistic(self.reference.cdf(window), self._steps)
        return self._statistic > self._threshold

    def _learn_many(self, values: Sequence[float], start: int) -> int:
        """``_learn`` value by value, the values between two checks written into the
        ring as slices (the same places, so the same window and evidence)."""
        m = len(values)
        if start >= m:
            return m
        if self._fired:
            self._restart()
        w, ring = self.window, self._ring
        i = start
        while i < m:
            # Values until the next check: the check needs `every` since the last one and a full window.
            due = max(self.every - self._since_check, w - self._filled, 1)
            take = min(due, m - i)
            at = self._at
            for piece_start in range(i, i + take, w):  # more than a window at once wraps more than once
                piece = values[piece_start:min(piece_start + w, i + take)]
                end = at + len(piece)
                if end <= w:
                    ring[at:end] = piece
                else:
                    ring[at:] = piece[:w - at]
                    ring[:end - w] = piece[w - at:]
                at = end % w
            self._at = at
            self._filled = min(self._filled + take, w)
            self._since_check += take
            self._n += take
            i += take
            if take < due:
                break
            self._since_check = 0
            self._statistic = ks_statistic(self.reference.cdf(np.sort(np.array(ring))), self._steps)
            if self._statistic > self._threshold:
                self._drift = self._fired = True
                return i - 1
        self._drift = self._fired = False
        return m

    @property
    def threshold(self) -> float:
        """The critical value of D, from ``alpha``, the window and the reference's size."""
        return self._threshold

    def summary(self) -> Summary:
        values = np.array(self._ring[:self._filled])
        current = {"mean": float(values.mean()), "std": float(values.std()),
                   "p50": float(np.median(values))} if values.size else {}
        return self._summary(statistic=self._statistic, threshold=self._threshold,
                             window=self._filled, reference_count=self.reference.count,
                             reference={"mean": self.reference.mean, "std": self.reference.std,
                                        "p50": self.reference.quantile(0.5)},
                             current=current)
