"""Seeded streams with known change points, for tests, benchmarks and demos.

numpy's legacy ``RandomState`` is used on purpose: numpy keeps its streams stable
across releases, so the exact detection indices pinned in tests stay put. The
change point is always ``n_before``: the first changed sample has that index.

>>> x = mean_shift(seed=1, n_before=3, n_after=2, shift=100.0)
>>> [round(v) for v in x]
[2, -1, -1, 99, 101]
>>> rows, errors = concept_switch(seed=1, n_before=2000, n_after=2000)
>>> round(errors[:2000].mean(), 2), round(errors[2000:].mean(), 2)  # the inputs never change
(0.1, 0.2)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from river.datasets import synth


def stationary(seed: int, n: int, mean: float = 0.0, std: float = 1.0) -> np.ndarray:
    return np.random.RandomState(seed).normal(mean, std, n)


def mean_shift(seed: int, n_before: int = 1000, n_after: int = 1000, shift: float = 1.0,
               mean: float = 0.0, std: float = 1.0) -> np.ndarray:
    """Abrupt: the mean moves by ``shift`` (in units of std) at ``n_before``."""
    x = stationary(seed, n_before + n_after, mean, std)
    x[n_before:] += shift * std
    return x


def gradual_mean_shift(seed: int, n_before: int = 1000, ramp: int = 500, n_after: int = 1000,
                       shift: float = 1.0, std: float = 1.0) -> np.ndarray:
    """The mean moves linearly over ``ramp`` samples from ``n_before``, then stays."""
    x = stationary(seed, n_before + ramp + n_after, 0.0, std)
    x[n_before:] += shift * std * np.minimum(1.0, np.arange(1, ramp + n_after + 1) / ramp)
    return x


def spread_change(seed: int, n_before: int = 1000, n_after: int = 1000, factor: float = 2.0) -> np.ndarray:
    """Same mean, the standard deviation multiplied by ``factor``."""
    x = stationary(seed, n_before + n_after)
    x[n_before:] *= factor
    return x


def error_bits(seed: int, n_before: int = 1000, n_after: int = 1000, p_before: float = 0.2,
               p_after: float = 0.5) -> np.ndarray:
    """Whether each prediction was wrong; the error rate switches at ``n_before``."""
    u = np.random.RandomState(seed).random_sample(n_before + n_after)
    return np.concatenate([u[:n_before] < p_before, u[n_before:] < p_after])


def categories(seed: int, labels: Sequence[str], p_before: Sequence[float], p_after: Sequence[float],
               n_before: int = 1000, n_after: int = 1000) -> list[str]:
    rng = np.random.RandomState(seed)
    picks = np.concatenate([rng.choice(len(labels), n_before, p=p_before),
                            rng.choice(len(labels), n_after, p=p_after)])
    return [labels[i] for i in picks]


def covariate_shift(seed: int, n_features: int = 4, shifted: int = 0, n_before: int = 1000,
                    n_after: int = 1000, shift: float = 1.0) -> list[dict[str, float]]:
    """Rows of independent N(0, 1) features ``f0``...; only ``f{shifted}`` moves."""
    x = np.random.RandomState(seed).normal(0.0, 1.0, (n_before + n_after, n_features))
    x[n_before:, shifted] += shift
    names = [f"f{j}" for j in range(n_features)]
    return [dict(zip(names, row)) for row in x.tolist()]


def concept_switch(seed: int, n_before: int = 1000, n_after: int = 1000,
                   noise: float = 0.1) -> tuple[list[dict[str, float]], np.ndarray]:
    """river's SEA concepts: inputs stay uniform, the labelling threshold moves 8 → 9.5.

    The model is SEA's first concept (x0 + x1 > 8); ``errors`` is whether it was wrong
    on each labelled row. The error rate goes from ``noise`` to about noise + 0.8·0.13 (0.1 → 0.2 by default).
    """
    before = synth.SEA(variant=0, noise=noise, seed=seed)
    after = synth.SEA(variant=3, noise=noise, seed=seed + 1)
    rows, errors = [], []
    for stream, n in ((before, n_before), (after, n_after)):
        for x, y in stream.take(n):
            rows.append({f"x{k}": float(v) for k, v in x.items()})
            errors.append((x[0] + x[1] > 8) != y)
    return rows, np.asarray(errors)
