"""Distances between a window of live values and the reference, and their thresholds.

Pure functions over numpy arrays. Probabilities are floored at ``EPS`` so an empty
bin never makes a divergence infinite.

>>> ref = np.array([0.5, 0.5])
>>> round(psi(ref, np.array([50, 50])), 6), round(psi(ref, np.array([80, 20])), 4)
(0.0, 0.4159)
>>> round(js_distance(ref, np.array([80, 20])), 4)  # scipy.spatial.distance.jensenshannon agrees
0.2251
>>> round(chi2_critical(1e-6, 9), 1)  # exact 44.8: the approximation errs on the quiet side
46.0
>>> round(ks_critical(1e-5, 300, 10**9), 4)
0.1426
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

EPS = 1e-4
_normal = NormalDist()


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else np.full(counts.shape, 1.0 / counts.size)


def psi(reference: np.ndarray, counts: np.ndarray) -> float:
    """Population stability index Σ (c - r) ln(c / r) of bin ``counts`` against shares."""
    c = np.maximum(_shares(counts), EPS)
    r = np.maximum(reference, EPS)
    return float(np.sum((c - r) * np.log(c / r)))


def js_distance(reference: np.ndarray, counts: np.ndarray) -> float:
    """Jensen-Shannon distance (natural log, in [0, √ln 2]), as scipy computes it."""
    c = _shares(counts)
    m = 0.5 * (c + reference)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_c = np.where(c > 0, c * np.log(c / m), 0.0).sum()
        kl_r = np.where(reference > 0, reference * np.log(reference / m), 0.0).sum()
    return float(math.sqrt(max(0.0, 0.5 * (kl_c + kl_r))))


def chi_square(reference: np.ndarray, counts: np.ndarray) -> float:
    """Pearson's statistic of ``counts`` against the reference shares."""
    expected = np.maximum(reference, EPS) * counts.sum()
    return float(np.sum((counts - expected) ** 2 / expected))


def chi2_critical(alpha: float, dof: int) -> float:
    """Upper ``alpha`` quantile of χ²(dof), by the Wilson-Hilferty cube approximation
    (above the exact value for small alpha: within 10% at alpha = 1e-6, dof >= 2)."""
    a = 2.0 / (9.0 * dof)
    return dof * (1.0 - a + _normal.inv_cdf(1.0 - alpha) * math.sqrt(a)) ** 3


def ks_statistic(cdf_at_sorted: np.ndarray, steps: np.ndarray | None = None) -> float:
    """sup |F_n - F| given F at the window's values, sorted ascending.

    ``steps`` (optional, for speed) is ``ks_steps(n)`` for the window's size.
    """
    steps = ks_steps(cdf_at_sorted.size) if steps is None else steps
    return float(max((steps[1:] - cdf_at_sorted).max(), (cdf_at_sorted - steps[:-1]).max()))


def ks_steps(n: int) -> np.ndarray:
    """The empirical CDF's levels 0, 1/n, ..., 1."""
    return np.arange(n + 1) / n


def ks_critical(alpha: float, n: int, m: int) -> float:
    """Two-sample Kolmogorov-Smirnov critical value: c(α)·√((n+m)/(n·m)).

    For a reference far larger than the window this is the DKW bound, which holds for
    every n: P(sup |F_n - F| > ε) ≤ 2·exp(-2nε²).
    """
    return math.sqrt(-math.log(alpha / 2.0) / 2.0) * math.sqrt((n + m) / (n * m))


def bernoulli_kl(p: float, q: float) -> float:
    """KL(Bernoulli(p) || Bernoulli(q)); Chernoff: P(mean of n ≥ p | q) ≤ exp(-n·KL) for p > q."""
    p = min(max(p, 1e-12), 1 - 1e-12)
    q = min(max(q, 1e-12), 1 - 1e-12)
    return p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))
