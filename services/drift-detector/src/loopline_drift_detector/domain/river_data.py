"""river's ADWIN, KSWIN and PageHinkley on a numeric feature.

These compare the stream with its own past, not with the reference, so they also
work without a profile. With a profile, values are standardised by the reference
mean and std first (``scale="zscore"``), which makes one parameter set fit every
feature; ``scale="none"`` feeds raw values. river resets a detector on the update
after it fired; the wrappers keep that behaviour. Parameters default to river's.

>>> import random
>>> rng = random.Random(12345)
>>> detector = PageHinkleyDetector(delta=0.5, threshold=12.0, alpha=1.0)
>>> for i in range(2000):
...     detector.update(rng.gauss(0, 1) + (1 if i >= 1000 else 0))
...     if detector.drift_detected:
...         print(f"change at {i}")
change at 1032
"""

from __future__ import annotations

import math
from typing import Any

from river import drift

from loopline_drift_detector.domain.detector import Detector, Summary
from loopline_core.profiles.reference import NumericProfile
from loopline_core.profiles.values import NumberGuard


class _RiverNumeric(Detector):
    accepts = "numeric"

    def __init__(self, reference: NumericProfile | None, scale: str) -> None:
        if scale not in ("zscore", "none"):
            raise ValueError(f"scale must be 'zscore' or 'none', not {scale!r}")
        super().__init__(NumberGuard(reference.valid_min, reference.valid_max) if reference else NumberGuard())
        self.reference = reference
        self.scale = scale
        if reference is not None and scale == "zscore":
            self._loc, self._scale = reference.mean, reference.std or 1.0
        else:
            self._loc, self._scale = 0.0, 1.0
        self._river: Any = None

    def _restart(self) -> None:
        """river restarts its detector by itself."""

    def _reference(self) -> tuple[int, dict[str, float]]:
        if self.reference is None:
            return 0, {}
        return self.reference.count, {"mean": self.reference.mean, "std": self.reference.std}


class ADWINDetector(_RiverNumeric):
    name = "adwin"

    def __init__(self, reference: NumericProfile | None = None, delta: float = 0.002, clock: int = 32,
                 max_buckets: int = 5, min_window_length: int = 5, grace_period: int = 10,
                 scale: str = "zscore") -> None:
        super().__init__(reference, scale)
        self.delta, self.clock, self.max_buckets = delta, clock, max_buckets
        self.min_window_length, self.grace_period = min_window_length, grace_period
        self._river = drift.ADWIN(delta, clock, max_buckets, min_window_length, grace_period)
        self._shift = 0.0

    def _learn(self, x: float) -> bool:
        before = self._river.estimation
        self._river.update((x - self._loc) / self._scale)
        if self._river.drift_detected:
            self._shift = self._river.estimation - before
        return self._river.drift_detected

    def summary(self) -> Summary:
        count, reference = self._reference()
        mean = self._river.estimation * self._scale + self._loc
        return self._summary(statistic=abs(self._shift), threshold=self.delta, window=self._river.width,
                             reference_count=count, reference=reference,
                             current={"mean": mean, "std": math.sqrt(self._river.variance) * self._scale})


class KSWINDetector(_RiverNumeric):
    name = "kswin"

    def __init__(self, reference: NumericProfile | None = None, alpha: float = 0.005,
                 window_size: int = 100, stat_size: int = 30, seed: int = 0,
                 scale: str = "zscore") -> None:
        super().__init__(reference, scale)
        self.alpha, self.window_size, self.stat_size, self.seed = alpha, window_size, stat_size, seed
        # Seeded: a restored checkpoint must draw the same samples as an uninterrupted run.
        self._river = drift.KSWIN(alpha=alpha, window_size=window_size, stat_size=stat_size, seed=seed)

    def _learn(self, x: float) -> bool:
        self._river.update((x - self._loc) / self._scale)
        return self._river.drift_detected

    def summary(self) -> Summary:
        count, reference = self._reference()
        recent = list(self._river.window)[-self.stat_size:]
        mean = sum(recent) / len(recent) * self._scale + self._loc if recent else math.nan
        p_value = max(float(self._river.p_value), 1e-300)
        return self._summary(statistic=-math.log10(p_value), threshold=-math.log10(self.alpha),
                             window=len(recent), reference_count=count, reference=reference,
                             current={"mean": mean, "p_value": p_value})


class PageHinkleyDetector(_RiverNumeric):
    name = "page_hinkley"

    def __init__(self, reference: NumericProfile | None = None, min_instances: int = 30,
                 delta: float = 0.005, threshold: float = 50.0, alpha: float = 1 - 0.0001,
                 mode: str = "both", scale: str = "zscore") -> None:
        super().__init__(reference, scale)
        self.min_instances, self.delta, self.threshold = min_instances, delta, threshold
        self.alpha, self.mode = alpha, mode
        self._river = drift.PageHinkley(min_instances, delta, threshold, alpha, mode)

    def _learn(self, x: float) -> bool:
        self._river.update((x - self._loc) / self._scale)
        return self._river.drift_detected

    def summary(self) -> Summary:
        count, reference = self._reference()
        ph = self._river  # river keeps the two test sums private; read them for the evidence only
        statistic = max(ph._sum_increase - ph._min_increase, ph._max_decrease - ph._sum_decrease)
        return self._summary(statistic=statistic, threshold=self.threshold, window=ph._x_mean.n,
                             reference_count=count, reference=reference,
                             current={"mean": ph._x_mean.get() * self._scale + self._loc})
