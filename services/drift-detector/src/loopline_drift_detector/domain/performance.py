"""Live quality against the version's validation metrics.

``ErrorRateCUSUM`` is a Bernoulli CUSUM (a repeated sequential probability ratio
test): H0 is the validation error rate p0, H1 is p0 + ``increase``; each error adds
ln(p1/p0), each correct prediction adds ln((1-p1)/(1-p0)), and the sum (floored at
zero) fires above ``h``. Anchored to p0, it fires again after each restart for as
long as the model stays worse; the monitor turns that into one decision per
``realert_after``. Defaults (increase 0.25, h 11): no false alarm in 1M outcomes at
p0 = 0.2 and a median delay of 44.5 after 0.2 -> 0.5 (make bench-drift).

``AccuracyDrop`` is the plain reading: accuracy over a sliding window compared with
validation accuracy minus ``margin``, by a one-sided Chernoff bound, so alpha holds
for every window size: P(window error ≥ e | true rate q) ≤ exp(-n·KL(e || q)).

>>> import random
>>> rng = random.Random(1)
>>> detector = ErrorRateCUSUM(validation_error=0.2)
>>> for i in range(2000):
...     detector.update(rng.random() < (0.2 if i < 1000 else 0.5))
...     if detector.drift_detected:
...         print(f"change at {i}, estimated start {detector.summary().change_index}")
...         break
change at 1034, estimated start 1000
"""

from __future__ import annotations

import math
from collections import deque

from loopline_drift_detector.domain.detector import Detector, Summary
from loopline_drift_detector.domain.divergence import bernoulli_kl
from loopline_core.profiles.values import ErrorGuard


#: The lowest in-control error rate the CUSUM assumes, whatever the holdout said.
ERROR_RATE_FLOOR = 0.02


class ErrorRateCUSUM(Detector):
    name = "error_cusum"
    accepts = "error"

    def __init__(self, validation_error: float, increase: float = 0.25, h: float = 11.0) -> None:
        super().__init__(ErrorGuard())
        self.validation_error = validation_error
        self.increase = increase
        self.h = h
        # A perfect score on a finite holdout is no evidence of a 0% live error rate: with
        # p0 at 0.1% two errors in a row would alarm. 2% is the floor of the in-control rate.
        p0 = min(max(validation_error, ERROR_RATE_FLOOR), 0.99)
        p1 = min(p0 + increase, 0.999)
        self._on_error = math.log(p1 / p0)
        self._on_correct = math.log((1 - p1) / (1 - p0))
        self._restart()

    def _restart(self) -> None:
        self._sum = 0.0
        self._run = 0  # outcomes since the sum was last zero
        self._run_errors = 0

    def _learn(self, error: bool) -> bool:
        s = self._sum + (self._on_error if error else self._on_correct)
        if s > 0.0:
            self._sum, self._run, self._run_errors = s, self._run + 1, self._run_errors + error
        else:
            self._sum, self._run, self._run_errors = 0.0, 0, 0
        return self._sum > self.h

    def summary(self) -> Summary:
        rate = self._run_errors / self._run if self._run else self.validation_error
        return self._summary(statistic=self._sum, threshold=self.h, window=self._run, reference_count=0,
                             reference={"error_rate": self.validation_error}, current={"error_rate": rate})


class AccuracyDrop(Detector):
    name = "accuracy_drop"
    accepts = "error"

    def __init__(self, validation_accuracy: float, margin: float = 0.05, window: int = 500,
                 alpha: float = 1e-6, every: int = 10) -> None:
        super().__init__(ErrorGuard())
        self.validation_accuracy = validation_accuracy
        self.margin = margin
        self.window = window
        self.alpha = alpha
        self.every = every
        self._tolerated = min(1 - validation_accuracy + margin, 1.0)
        self._outcomes: deque[bool] = deque(maxlen=window)
        self._restart()

    def _restart(self) -> None:
        self._outcomes.clear()
        self._errors = 0
        self._since_check = 0
        self._evidence = 0.0

    def _learn(self, error: bool) -> bool:
        if len(self._outcomes) == self.window:
            self._errors -= self._outcomes[0]
        self._outcomes.append(error)
        self._errors += error
        self._since_check += 1
        if self._since_check < self.every or len(self._outcomes) < self.window:
            return False
        self._since_check = 0
        rate = self._errors / self.window
        self._evidence = self.window * bernoulli_kl(rate, self._tolerated) if rate > self._tolerated else 0.0
        return self._evidence > -math.log(self.alpha)

    def summary(self) -> Summary:
        n = len(self._outcomes)
        accuracy = 1 - self._errors / n if n else math.nan
        return self._summary(statistic=self._evidence, threshold=-math.log(self.alpha), window=n,
                             reference_count=0,
                             reference={"accuracy": self.validation_accuracy,
                                        "tolerated_accuracy": 1 - self._tolerated},
                             current={"accuracy": accuracy})
