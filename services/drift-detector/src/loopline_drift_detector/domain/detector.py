"""The one detector API: ``update(x)``, then read ``drift_detected``; ``summary()`` explains.

Every detector guards its input (see ``values``): a rejected value is counted and
changes nothing else. As in river, a detector that fired starts afresh on its next
update, so ``summary()`` right after a firing still describes the evidence.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from loopline_core.profiles.values import CategoryGuard, ErrorGuard, NumberGuard, ValueCounts

Guard = NumberGuard | CategoryGuard | ErrorGuard


@dataclass(frozen=True)
class Summary:
    """What a detector decided on. Indices count the valid samples it was fed."""

    detector: str
    statistic: float
    #: It fires when ``statistic`` exceeds this; for river's detectors, their own decision
    #: parameter (see docs/drift.md).
    threshold: float
    #: Samples the statistic was computed on, ending with the latest one.
    window: int
    sample_count: int
    reference_count: int
    #: Estimated index of the first sample after the change.
    change_index: int
    reference: Mapping[str, float]
    current: Mapping[str, float]
    #: Values offered, by what happened to them (valid, missing, nan, inf, ...).
    counts: Mapping[str, int]


class Detector(abc.ABC):
    """Base of every detector: parameters are public, state is private."""

    name: ClassVar[str]
    #: "numeric", "categorical" or "error": what ``update`` expects.
    accepts: ClassVar[str]

    def __init__(self, guard: Guard) -> None:
        self._guard = guard
        self._n = 0
        self._drift = False
        self._fired = False  # restart on the next valid value, even after rejected ones

    @property
    def drift_detected(self) -> bool:
        """Whether the last update found a change."""
        return self._drift

    @property
    def n_samples(self) -> int:
        """Valid samples seen."""
        return self._n

    @property
    def counts(self) -> ValueCounts:
        return self._guard.counts

    def update(self, x: Any) -> None:
        value = self._guard.accept(x)
        if value is None:
            self._drift = False
            return
        self._update_checked(value)

    def _update_checked(self, value: Any) -> None:
        """``update`` for a caller whose own guard of the same kind accepted ``value``
        (``Stream.offer`` inlines it: keep the two alike)."""
        if self._fired:
            self._restart()
        self._n += 1
        self._drift = self._fired = self._learn(value)

    def _learn_many(self, values: Sequence[Any], start: int) -> int:
        """``_update_checked`` for ``values[start:]`` in turn, up to the first that fires:
        its position, or ``len(values)`` when none did (``Stream.offer_many``). A
        detector may learn a batch faster here; its state must stay the same as value
        by value (see tests/unit/drift/test_drift_batches.py)."""
        learn = self._learn
        for i in range(start, len(values)):
            if self._fired:
                self._restart()
            self._n += 1
            if learn(values[i]):
                self._drift = self._fired = True
                return i
            self._drift = self._fired = False
        return len(values)

    @abc.abstractmethod
    def _learn(self, value: Any) -> bool:
        """Take one valid value; return whether the detector fires now."""

    @abc.abstractmethod
    def _restart(self) -> None:
        """Forget the evidence after a firing (the sample count goes on)."""

    @abc.abstractmethod
    def summary(self) -> Summary: ...

    def _summary(self, *, statistic: float, threshold: float, window: int, reference_count: int,
                 reference: Mapping[str, float], current: Mapping[str, float]) -> Summary:
        window = min(window, self._n)
        return Summary(self.name, float(statistic), float(threshold), window, self._n,
                       reference_count, self._n - window, dict(reference), dict(current),
                       self.counts.as_dict())

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items()
                           if not k.startswith("_") and k != "reference")
        return f"{type(self).__name__}({params})"
