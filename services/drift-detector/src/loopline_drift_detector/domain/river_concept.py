"""river's error-stream detectors, fed ``error: bool`` whatever bit river wants.

Polarity, read in river 0.23's source and pinned by tests: DDM, EDDM, HDDM_A and
HDDM_W all take 1 for an error (a misclassification) and 0 for a correct
prediction, and only look for the error rate going up (HDDM's two-sided mode is
left off). ADWIN is two-sided, so its wrapper reports a change only when the
window it keeps after the cut has a higher error rate than before: a model that
gets better is not drift to act on. ``ERROR_BIT`` records the bit each detector
is given for an error. The evidence (and a retrain request's ``data_since``) starts
where the error rate most likely rose (``_since_rise``), not a fixed window back.

>>> import random
>>> rng = random.Random(42)
>>> detector = HDDMADetector(drift_confidence=1e-4)
>>> for i in range(2000):
...     detector.update(rng.random() < (0.2 if i < 1000 else 0.5))
...     if detector.drift_detected:
...         s = detector.summary()
...         print(f"change at {i}, began at {s.change_index}: error rate {s.reference['error_rate']:.2f} "
...               f"-> {s.current['error_rate']:.2f}")
change at 1039, began at 1004: error rate 0.18 -> 0.67
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from river import drift, stats

from loopline_drift_detector.domain.detector import Detector, Summary
from loopline_core.profiles.values import ErrorGuard


class _RiverErrors(Detector):
    accepts = "error"
    #: The bit river reads as "this prediction was wrong".
    ERROR_BIT: ClassVar[int] = 1
    #: Recent outcomes kept for the evidence: the current error rate is read on those
    #: since the estimated change (``_since_change``).
    RECENT: ClassVar[int] = 500

    def __init__(self, river_detector: Any, threshold: float) -> None:
        super().__init__(ErrorGuard())
        self._river = river_detector
        self._threshold = threshold
        self._recent: deque[bool] = deque(maxlen=self.RECENT)
        self._restart()

    def _restart(self) -> None:
        # river restarts its own detector; the evidence restarts with it.
        self._recent.clear()
        self._seen = 0
        self._errors = 0

    def _learn(self, error: bool) -> bool:
        self._recent.append(error)
        self._seen += 1
        self._errors += error
        self._river.update(self.ERROR_BIT if error else 1 - self.ERROR_BIT)
        return self._river.drift_detected

    def _since_change(self) -> int:
        """Outcomes since the change began: the split of the recent outcomes kept that
        best explains them as two error rates, the later one higher (maximum likelihood,
        Bernoulli). All of them when no split raises the rate."""
        return _since_rise(self._recent)

    def summary(self) -> Summary:
        kept = len(self._recent)
        window = max(0, min(self._since_change(), kept))
        recent_errors = sum(list(self._recent)[kept - window:]) if window < kept else sum(self._recent)
        before = self._seen - window
        rate = recent_errors / window if window else 0.0
        return self._summary(statistic=rate, threshold=self._threshold, window=window,
                             reference_count=before,
                             reference={"error_rate": (self._errors - recent_errors) / before} if before else {},
                             current={"error_rate": rate})


def _since_rise(outcomes: Sequence[bool]) -> int:
    """How many of the latest ``outcomes`` came after the most likely rise of the error
    rate (one change, Bernoulli before and after); all of them when none rises.

    >>> _since_rise([False] * 80 + [True, False] * 20)
    40
    >>> _since_rise([True] * 10 + [False] * 10)
    20
    """
    n = len(outcomes)
    if n < 2:
        return n
    errors = np.cumsum(np.fromiter(outcomes, dtype=float, count=n))
    before_n = np.arange(1, n, dtype=float)  # a split after 1 .. n-1 outcomes
    before_e = errors[:-1]
    after_n = n - before_n
    after_e = errors[-1] - before_e
    with np.errstate(divide="ignore", invalid="ignore"):
        fit = _bernoulli_ll(before_e, before_n) + _bernoulli_ll(after_e, after_n)
    fit[after_e / after_n <= before_e / before_n] = -np.inf
    if not np.isfinite(fit).any():
        return n
    return int(after_n[int(np.argmax(fit))])


def _bernoulli_ll(errors: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Log-likelihood of ``errors`` in ``n`` at their own rate (0·log 0 = 0)."""
    p = errors / n
    return np.where(errors > 0, errors * np.log(p), 0.0) + np.where(n - errors > 0, (n - errors) * np.log1p(-p), 0.0)


class DDMDetector(_RiverErrors):
    name = "ddm"

    def __init__(self, warm_start: int = 30, warning_threshold: float = 2.0, drift_threshold: float = 3.0) -> None:
        self.warm_start, self.warning_threshold, self.drift_threshold = warm_start, warning_threshold, drift_threshold
        super().__init__(drift.binary.DDM(warm_start, warning_threshold, drift_threshold), drift_threshold)


class EDDMDetector(_RiverErrors):
    name = "eddm"

    def __init__(self, warm_start: int = 30, alpha: float = 0.95, beta: float = 0.9) -> None:
        self.warm_start, self.alpha, self.beta = warm_start, alpha, beta
        super().__init__(drift.binary.EDDM(warm_start, alpha, beta), beta)


class _Mean(stats.Mean):
    """river's running mean, whose copy with its state is ``copy.copy``: the same object
    as ``clone(include_attributes=True)`` gives (its state is two floats), without
    river's parameter inspection, which HDDM_A pays on most updates."""

    def clone(self, new_params: dict[str, Any] | None = None, include_attributes: bool = False) -> Any:
        if new_params or not include_attributes:
            return super().clone(new_params, include_attributes)
        return copy.copy(self)


class _HDDM_A(drift.binary.HDDM_A):  # noqa: N801 - river's name
    """river's HDDM_A, unchanged, keeping its means as ``_Mean`` (cheap to copy).
    A checkpoint of river's own class still loads and runs as before."""

    def _reset(self) -> None:
        super()._reset()
        self._x_min, self._x_max, self._z = _Mean(), _Mean(), _Mean()


class HDDMADetector(_RiverErrors):
    name = "hddm_a"

    def __init__(self, drift_confidence: float = 0.001, warning_confidence: float = 0.005) -> None:
        self.drift_confidence, self.warning_confidence = drift_confidence, warning_confidence
        super().__init__(_HDDM_A(drift_confidence, warning_confidence), drift_confidence)




class HDDMWDetector(_RiverErrors):
    name = "hddm_w"

    def __init__(self, drift_confidence: float = 0.001, warning_confidence: float = 0.005,
                 lambda_val: float = 0.05) -> None:
        self.drift_confidence, self.warning_confidence = drift_confidence, warning_confidence
        self.lambda_val = lambda_val
        super().__init__(drift.binary.HDDM_W(drift_confidence, warning_confidence, lambda_val), drift_confidence)


class ADWINErrorDetector(_RiverErrors):
    name = "adwin"

    def __init__(self, delta: float = 0.002, clock: int = 32, max_buckets: int = 5,
                 min_window_length: int = 5, grace_period: int = 10) -> None:
        self.delta, self.clock, self.max_buckets = delta, clock, max_buckets
        self.min_window_length, self.grace_period = min_window_length, grace_period
        super().__init__(drift.ADWIN(delta, clock, max_buckets, min_window_length, grace_period), delta)

    def _learn(self, error: bool) -> bool:
        before = self._river.estimation
        if not super()._learn(error):
            return False
        # ADWIN cuts on a change either way; only a rise in the error rate counts. After
        # a fall river still restarts on the next update, so the evidence restarts too.
        if self._river.estimation > before:
            return True
        self._restart()
        return False
