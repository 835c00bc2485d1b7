"""The distances and thresholds agree with scipy's; the seeded streams are what they say."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from loopline_drift_detector.domain import NumericProfile, synthetic
from loopline_drift_detector.domain.divergence import (
    bernoulli_kl,
    chi2_critical,
    chi_square,
    js_distance,
    ks_critical,
    ks_statistic,
    psi,
)


@pytest.mark.parametrize("counts", [[50, 30, 20], [10, 10, 80], [0, 0, 100]])
def test_divergences_match_their_definitions(counts: list[int]) -> None:
    reference, c = np.array([0.5, 0.3, 0.2]), np.array(counts, dtype=float)
    assert js_distance(reference, c) == pytest.approx(jensenshannon(c / c.sum(), reference), abs=1e-12)
    assert chi_square(reference, c) == pytest.approx(stats.chisquare(c, reference * c.sum()).statistic)
    shares = np.maximum(c / c.sum(), 1e-4)
    assert psi(reference, c) == pytest.approx(np.sum((shares - reference) * np.log(shares / reference)))


def test_ks_against_the_reference_cdf_matches_scipy() -> None:
    rng = np.random.RandomState(0)
    profile = NumericProfile.from_values(rng.normal(size=200_000))
    window = np.sort(rng.normal(0.3, 1.0, 300))
    expected = stats.kstest(window, "norm").statistic
    assert ks_statistic(profile.cdf(window)) == pytest.approx(expected, abs=0.01)  # the profile is an estimate


@pytest.mark.parametrize("dof", [2, 9, 49])
@pytest.mark.parametrize("alpha", [1e-3, 1e-6])
def test_chi2_approximation_is_close_and_errs_on_the_quiet_side(alpha: float, dof: int) -> None:
    exact = stats.chi2.isf(alpha, dof)
    assert exact <= chi2_critical(alpha, dof) <= exact * 1.1


def test_ks_critical_value_holds_its_level() -> None:
    # The two-sample asymptotic value is conservative against scipy's exact one-sample law.
    assert stats.kstwo.sf(ks_critical(1e-4, 300, 10**9), 300) <= 1e-4


def test_bernoulli_kl_is_the_chernoff_exponent() -> None:
    assert bernoulli_kl(0.5, 0.25) == pytest.approx(0.5 * np.log(2) + 0.5 * np.log(0.5 / 0.75))
    assert stats.binom.sf(0.4 * 500 - 1, 500, 0.25) <= np.exp(-500 * bernoulli_kl(0.4, 0.25))


def test_seeded_streams_change_where_they_say() -> None:
    x = synthetic.mean_shift(seed=3, n_before=5000, n_after=5000, shift=1.0, mean=10.0, std=2.0)
    assert x[:5000].mean() == pytest.approx(10.0, abs=0.1) and x[5000:].mean() == pytest.approx(12.0, abs=0.1)
    g = synthetic.gradual_mean_shift(seed=3, n_before=1000, ramp=1000, n_after=5000)
    assert g[:1000].mean() == pytest.approx(0.0, abs=0.1) and g[2000:].mean() == pytest.approx(1.0, abs=0.05)
    s = synthetic.spread_change(seed=3, n_before=5000, n_after=5000, factor=2.0)
    assert s[5000:].std() == pytest.approx(2 * s[:5000].std(), rel=0.05)
    e = synthetic.error_bits(seed=3, n_before=5000, n_after=5000, p_before=0.2, p_after=0.5)
    assert e[:5000].mean() == pytest.approx(0.2, abs=0.02) and e[5000:].mean() == pytest.approx(0.5, abs=0.02)
    assert np.array_equal(synthetic.mean_shift(seed=3), synthetic.mean_shift(seed=3))


def test_covariate_shift_moves_one_feature_only() -> None:
    rows = synthetic.covariate_shift(seed=2, n_features=3, shifted=1, n_before=4000, n_after=4000)
    before, after = np.array([list(r.values()) for r in rows[:4000]]), np.array([list(r.values()) for r in rows[4000:]])
    assert np.allclose(after.mean(axis=0) - before.mean(axis=0), [0.0, 1.0, 0.0], atol=0.08)


def test_a_concept_switch_keeps_the_inputs() -> None:
    rows, errors = synthetic.concept_switch(seed=2, n_before=4000, n_after=4000)
    x = np.array([[r["x0"], r["x1"], r["x2"]] for r in rows])
    assert np.abs(x[:4000].mean(axis=0) - x[4000:].mean(axis=0)).max() < 0.15
    assert errors[:4000].mean() == pytest.approx(0.1, abs=0.015)
    assert errors[4000:].mean() == pytest.approx(0.2, abs=0.02)
