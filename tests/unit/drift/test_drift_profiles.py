"""Reference profiles: built from training data, stored as bytes, read back identical."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest
from loopline_core.errors import InvalidArgument

from loopline_drift_detector.domain import (
    CategoricalProfile,
    FeatureSpec,
    NumericProfile,
    ReferenceProfile,
    build_profile,
)


def test_a_numpy_array_gives_quantiles_bins_and_moments() -> None:
    rng = np.random.RandomState(0)
    data = np.column_stack([rng.normal(5.0, 2.0, 10_000), rng.exponential(1.0, 10_000)])
    profile = build_profile(data, ["gauss", "expo"], bins=10)
    gauss = profile.features["gauss"]
    assert isinstance(gauss, NumericProfile) and gauss.count == 10_000 and profile.row_count == 10_000
    assert gauss.mean == pytest.approx(5.0, abs=0.05) and gauss.std == pytest.approx(2.0, abs=0.05)
    assert gauss.quantile(0.5) == pytest.approx(5.0, abs=0.1)
    assert gauss.quantile(0.975) == pytest.approx(5.0 + 1.96 * 2.0, abs=0.15)
    assert len(gauss.bin_edges) == 9 and sum(gauss.bin_counts) == 10_000
    assert all(abs(c - 1000) <= 1 for c in gauss.bin_counts)  # equal-frequency bins


def test_rows_of_mappings_with_bad_values_are_counted_not_profiled() -> None:
    rows = [{"age": 30.0, "plan": "pro"}, {"age": math.nan, "plan": None}, {"age": math.inf, "plan": "free"},
            {"age": -4.0, "plan": "pro"}, {"plan": "pro"}, {"age": 50, "plan": ""}]
    specs = [FeatureSpec("age", valid_min=0.0, valid_max=130.0), FeatureSpec("plan", "categorical")]
    profile = build_profile(rows, specs)
    age, plan = profile.features["age"], profile.features["plan"]
    assert (age.count, age.rejected, age.mean, age.valid_min, age.valid_max) == (2, 4, 40.0, 0.0, 130.0)
    assert isinstance(plan, CategoricalProfile) and dict(plan.frequencies) == {"pro": 3, "free": 1}
    assert plan.rejected == 2


def test_rare_categories_are_folded_into_other() -> None:
    rows = [[c] for c in "aaaabbbccd"]
    plan = build_profile(rows, [FeatureSpec("c", "categorical")], max_categories=2).features["c"]
    assert dict(plan.frequencies) == {"a": 4, "b": 3} and plan.other == 3
    assert plan.bin_probabilities().tolist() == [0.4, 0.3, 0.3]


def test_bytes_round_trip() -> None:
    rows = [[float(i), "ab"[i % 2]] for i in range(100)]
    profile = build_profile(rows, [FeatureSpec("x"), FeatureSpec("c", "categorical")])
    again = ReferenceProfile.from_bytes(profile.to_bytes())
    assert again == profile and again.to_bytes() == profile.to_bytes()


@pytest.mark.parametrize("data", [b"not json", b'{"format": 99, "features": {}, "row_count": 0}',
                                  b'{"format": 1, "row_count": 1, "features": {"x": {"kind": "cube"}}}'])
def test_unreadable_profiles_are_refused_by_name(data: bytes) -> None:
    with pytest.raises(InvalidArgument) as e:
        ReferenceProfile.from_bytes(data)
    assert e.value.field == "reference_profile"


def test_a_feature_without_any_valid_value_is_refused() -> None:
    with pytest.raises(InvalidArgument) as e:
        build_profile([[None], [math.nan]], ["empty"])
    assert e.value.field == "empty"


def test_normal_scores_are_standard_normal_whatever_the_shape() -> None:
    rng = np.random.RandomState(1)
    train, live = rng.exponential(3.0, 20_000), rng.exponential(3.0, 20_000)
    profile = NumericProfile.from_values(train)
    z = np.array([profile.normal_score(x) for x in live])
    assert abs(z.mean()) < 0.03 and abs(z.std() - 1.0) < 0.03
    assert abs(np.mean(z > 1.645) - 0.05) < 0.005  # the tails too, not just the moments


def test_normal_scores_of_tied_values_sit_in_the_middle_of_their_plateau() -> None:
    profile = NumericProfile.from_values([0.0] * 50 + [1.0] * 50)
    assert profile.normal_score(0.0) == pytest.approx(NormalDist().inv_cdf(0.49 / 2))  # 0 holds p in [0, 0.49]
    assert profile.normal_score(0.5) == pytest.approx(0.0, abs=0.05)
    assert profile.normal_score(-9.0) == profile.normal_score(-1e9) == NormalDist().inv_cdf(0.5 / 101)
    assert profile.normal_score(1e9) == pytest.approx(-profile.normal_score(-1e9))
