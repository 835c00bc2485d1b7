"""Build a reference profile from a version's training data.

Rows may be a 2-D numpy array, sequences in feature order, or mappings by feature
name. Values a detector would refuse (missing, NaN, infinite, out of range) are
left out of the statistics and counted in ``rejected``.

>>> rows = [{"age": 31, "plan": "pro"}, {"age": 45.5, "plan": "free"}, {"age": None, "plan": "pro"}]
>>> profile = build_profile(rows, [FeatureSpec("age"), FeatureSpec("plan", "categorical")])
>>> profile.features["age"].count, profile.features["age"].rejected, profile.features["age"].mean
(2, 1, 38.25)
>>> dict(profile.features["plan"].frequencies)
{'pro': 2, 'free': 1}
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from loopline_core.errors import InvalidArgument

from loopline_core.profiles.reference import (
    CategoricalProfile,
    FeatureProfile,
    NumericProfile,
    ReferenceProfile,
)
from loopline_core.profiles.values import CategoryGuard, NumberGuard


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    kind: Literal["numeric", "categorical"] = "numeric"
    valid_min: float | None = None
    valid_max: float | None = None


def build_profile(rows: Any, features: Sequence[FeatureSpec | str], *, bins: int = 10,
                  max_categories: int = 50) -> ReferenceProfile:
    specs = [f if isinstance(f, FeatureSpec) else FeatureSpec(f) for f in features]
    if len({s.name for s in specs}) != len(specs):
        raise InvalidArgument("feature names must be unique", field="features")
    n_rows = len(rows)
    built = {s.name: _profile(s, _column(rows, j, s.name), bins, max_categories)
             for j, s in enumerate(specs)}
    return ReferenceProfile(built, n_rows)


def _column(rows: Any, j: int, name: str) -> list[Any]:
    if isinstance(rows, np.ndarray):
        if rows.ndim != 2:
            raise InvalidArgument("a numpy array of rows must be 2-D", field="rows")
        return rows[:, j].tolist()
    return [row.get(name) if isinstance(row, Mapping) else row[j] for row in rows]


def _profile(spec: FeatureSpec, values: list[Any], bins: int, max_categories: int) -> FeatureProfile:
    if spec.kind == "categorical":
        cat_guard = CategoryGuard()
        counts = Counter(c for c in map(cat_guard.accept, values) if c is not None)
        if not counts:
            raise InvalidArgument(f"feature {spec.name!r} has no valid value", field=spec.name)
        top = dict(counts.most_common(max_categories))
        other = sum(counts.values()) - sum(top.values())
        return CategoricalProfile(sum(counts.values()), top, other, cat_guard.counts.rejected)
    if spec.kind != "numeric":
        raise InvalidArgument(f"unknown feature kind {spec.kind!r}", field=spec.name)
    guard = NumberGuard(spec.valid_min, spec.valid_max)
    valid = [v for v in map(guard.accept, values) if v is not None]
    if not valid:
        raise InvalidArgument(f"feature {spec.name!r} has no valid value", field=spec.name)
    return NumericProfile.from_values(valid, bins=bins, valid_min=spec.valid_min,
                                      valid_max=spec.valid_max, rejected=guard.counts.rejected)
