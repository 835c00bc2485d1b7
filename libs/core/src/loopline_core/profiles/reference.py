"""Reference profiles: what a version's training data looked like, per feature.

Stored with the model version in the registry as ``reference_profile`` (JSON bytes).
Numeric features keep a fine quantile table (the reference CDF, interpolated
linearly), equal-frequency histogram bins, mean and std; categorical features keep
category counts. ``rejected`` counts the training values that were missing, NaN,
infinite or out of range.

>>> p = NumericProfile.from_values([0.0, 1.0, 2.0, 3.0, 4.0], bins=2)
>>> p.mean, p.quantile(0.5), p.bin_edges, p.bin_counts
(2.0, 2.0, (2.0,), (2, 3))
>>> round(p.normal_score(2.0), 6), round(p.normal_score(9.0), 3)  # capped: 5 values say little about tails
(0.0, 1.383)
>>> ReferenceProfile.from_bytes(ReferenceProfile({"x": p}, 5).to_bytes()).features["x"] == p
True
"""

from __future__ import annotations

import json
import math
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from functools import cached_property
from statistics import NormalDist
from typing import Any

import numpy as np
from loopline_core.errors import InvalidArgument

PROFILE_FORMAT = 1
#: Probabilities of the stored quantiles: percentiles, plus finer tails for normal scores.
QUANTILE_PROBS: tuple[float, ...] = (
    (0.0, 0.001, 0.0025, 0.005)
    + tuple(round(i / 100, 2) for i in range(1, 100))
    + (0.995, 0.9975, 0.999, 1.0)
)
_inv_cdf = NormalDist().inv_cdf


@dataclass(frozen=True)
class NumericProfile:
    count: int
    mean: float
    std: float
    quantile_probs: tuple[float, ...]
    quantiles: tuple[float, ...]
    #: Inner edges; bin i holds edges[i-1] <= x < edges[i], with open ends.
    bin_edges: tuple[float, ...]
    bin_counts: tuple[int, ...]
    valid_min: float | None = None
    valid_max: float | None = None
    rejected: int = 0
    kind: str = field(default="numeric", init=False)

    @classmethod
    def from_values(cls, values: Any, *, bins: int = 10, valid_min: float | None = None,
                    valid_max: float | None = None, rejected: int = 0) -> NumericProfile:
        x = np.asarray(values, dtype=float)
        if x.size == 0:
            raise InvalidArgument("no valid value to profile", field="values")
        q = np.quantile(x, QUANTILE_PROBS)
        edges = np.unique(np.quantile(x, np.arange(1, bins) / bins)) if bins > 1 else np.array([])
        counts = np.bincount(np.searchsorted(edges, x, side="right"), minlength=edges.size + 1)
        return cls(int(x.size), float(x.mean()), float(x.std()), QUANTILE_PROBS,
                   tuple(float(v) for v in q), tuple(float(e) for e in edges),
                   tuple(int(c) for c in counts), valid_min, valid_max, rejected)

    def quantile(self, p: float) -> float:
        return float(np.interp(p, self.quantile_probs, self.quantiles))

    def cdf(self, x: np.ndarray) -> np.ndarray:
        """The reference CDF at ``x``, interpolated between stored quantiles."""
        q, p = self._cdf_table
        return np.interp(x, q, p)

    @cached_property
    def _cdf_table(self) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self.quantiles), np.asarray(self.quantile_probs)

    @cached_property
    def _score_knots(self) -> tuple[list[float], list[float], float, float]:
        """Knots (x, z) for normal scores, one per distinct quantile with z at the middle of
        its probability plateau, and the scores below and above the reference's range:
        the 1/(2(n+1)) tails (at most 1e-6), since n values say nothing rarer."""
        floor = max(1e-6, 0.5 / (self.count + 1))
        xs: list[float] = []
        us: list[list[float]] = []
        for x, u in zip(self.quantiles, self.quantile_probs):
            if xs and x == xs[-1]:
                us[-1].append(u)
            else:
                xs.append(x)
                us.append([u])
        zs = [_inv_cdf(min(max(0.5 * (u[0] + u[-1]), floor), 1.0 - floor)) for u in us]
        return xs, zs, _inv_cdf(floor), _inv_cdf(1.0 - floor)

    def normal_score(self, x: float) -> float:
        """Φ⁻¹(F_ref(x)), interpolated: standard normal under the reference, whatever its shape."""
        xs, zs, below, above = self._score_knots
        i = bisect_right(xs, x)
        if i and xs[i - 1] == x:
            return zs[i - 1]
        if i == 0 or i == len(xs):
            return below if i == 0 else above
        x0 = xs[i - 1]
        return zs[i - 1] + (zs[i] - zs[i - 1]) * (x - x0) / (xs[i] - x0)

    def bin_probabilities(self) -> np.ndarray:
        return np.asarray(self.bin_counts, dtype=float) / max(1, sum(self.bin_counts))

    def summary(self) -> dict[str, float]:
        return {"count": float(self.count), "mean": self.mean, "std": self.std,
                "p05": self.quantile(0.05), "p50": self.quantile(0.5), "p95": self.quantile(0.95)}


@dataclass(frozen=True)
class CategoricalProfile:
    count: int
    #: Counts of the most frequent categories; the rest are summed in ``other``.
    frequencies: Mapping[str, int]
    other: int = 0
    rejected: int = 0
    kind: str = field(default="categorical", init=False)

    def bin_probabilities(self) -> np.ndarray:
        """Probabilities of the known categories, in order, then of everything else."""
        counts = [*self.frequencies.values(), self.other]
        return np.asarray(counts, dtype=float) / max(1, sum(counts))

    def summary(self) -> dict[str, float]:
        top = sorted(self.frequencies.items(), key=lambda kv: -kv[1])[:5]
        return {"count": float(self.count), **{f"share[{k}]": v / max(1, self.count) for k, v in top}}


FeatureProfile = NumericProfile | CategoricalProfile


@dataclass(frozen=True)
class ReferenceProfile:
    features: Mapping[str, FeatureProfile]
    row_count: int

    def to_bytes(self) -> bytes:
        doc = {"format": PROFILE_FORMAT, "row_count": self.row_count,
               "features": {name: asdict(p) for name, p in self.features.items()}}
        return json.dumps(doc, sort_keys=True, allow_nan=False).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> ReferenceProfile:
        try:
            doc = json.loads(data)
            if doc.get("format") != PROFILE_FORMAT:
                raise InvalidArgument(f"unknown profile format {doc.get('format')!r}",
                                      field="reference_profile")
            return cls({name: _feature(f) for name, f in doc["features"].items()}, int(doc["row_count"]))
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise InvalidArgument(f"unreadable reference profile: {e}", field="reference_profile") from e


def _feature(doc: dict[str, Any]) -> FeatureProfile:
    kind = doc.pop("kind")
    if kind == "categorical":
        return CategoricalProfile(**doc)
    if kind != "numeric":
        raise ValueError(f"unknown feature kind {kind!r}")
    for key in ("quantile_probs", "quantiles", "bin_edges", "bin_counts"):
        doc[key] = tuple(doc[key])
    if any(not math.isfinite(v) for v in doc["quantiles"]):
        raise ValueError("quantiles must be finite")
    return NumericProfile(**doc)
