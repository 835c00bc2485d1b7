"""Input guards: what may reach a detector, and the count of what may not.

A detector never sees NaN, an infinity, a missing value, a value outside the
feature's declared valid range, or something that is not a value of its kind.
Each guard counts what it turned away, by reason, so the evidence can report it.

>>> guard = NumberGuard(valid_min=0.0)
>>> [guard.accept(x) for x in (1.5, float("nan"), None, -2.0, float("inf"), "7")]
[1.5, None, None, None, None, None]
>>> guard.counts.as_dict()
{'valid': 1, 'missing': 1, 'nan': 1, 'inf': 1, 'out_of_range': 1, 'wrong_type': 1}
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from numbers import Real
from typing import Any

import numpy as np


@dataclass
class ValueCounts:
    """How many values a stream was offered, by what happened to them."""

    valid: int = 0
    missing: int = 0
    nan: int = 0
    inf: int = 0
    out_of_range: int = 0
    wrong_type: int = 0

    @property
    def rejected(self) -> int:
        return self.missing + self.nan + self.inf + self.out_of_range + self.wrong_type

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class NumberGuard:
    """Finite real numbers inside ``[valid_min, valid_max]`` (either bound optional)."""

    def __init__(self, valid_min: float | None = None, valid_max: float | None = None) -> None:
        self.valid_min = -math.inf if valid_min is None else float(valid_min)
        self.valid_max = math.inf if valid_max is None else float(valid_max)
        self.counts = ValueCounts()

    def accept(self, x: Any) -> float | None:
        counts = self.counts
        if type(x) is not float:  # the common case costs one type check
            if x is None:
                counts.missing += 1
                return None
            if isinstance(x, bool) or not isinstance(x, Real):
                counts.wrong_type += 1
                return None
            x = float(x)
        if x != x:
            counts.nan += 1
            return None
        if x in (math.inf, -math.inf):
            counts.inf += 1
            return None
        if not self.valid_min <= x <= self.valid_max:
            counts.out_of_range += 1
            return None
        counts.valid += 1
        return x


class CategoryGuard:
    """Category labels: strings, or integers (read as their decimal text)."""

    def __init__(self) -> None:
        self.counts = ValueCounts()

    def accept(self, x: Any) -> str | None:
        if type(x) is str:
            if x:
                self.counts.valid += 1
                return x
            self.counts.missing += 1
            return None
        if x is None:
            self.counts.missing += 1
            return None
        if isinstance(x, float) and x != x:
            self.counts.nan += 1
            return None
        if isinstance(x, int) and not isinstance(x, bool):
            self.counts.valid += 1
            return str(x)
        self.counts.wrong_type += 1
        return None


class ErrorGuard:
    """Whether a labelled prediction was wrong: a bool (or 0/1)."""

    def __init__(self) -> None:
        self.counts = ValueCounts()

    def accept(self, x: Any) -> bool | None:
        if x is True or x is False:
            self.counts.valid += 1
            return x
        if x is None:
            self.counts.missing += 1
            return None
        if isinstance(x, float) and x != x:
            self.counts.nan += 1
            return None
        if isinstance(x, (Real, np.bool_)) and x in (0, 1):
            self.counts.valid += 1
            return bool(x)
        self.counts.wrong_type += 1
        return None
