"""Describe recent values against the reference, for the evidence of a decision.

Computed only when a decision is made, on the stream's recent values.

>>> from loopline_core.profiles.reference import CategoricalProfile
>>> explain(CategoricalProfile(100, {"a": 50, "b": 50}), ["a"] * 8 + ["c"] * 2)
{'count': 10.0, 'share[a]': 0.8, 'share[(other)]': 0.2, 'share[b]': 0.0, 'psi': 5.9182, 'js': 0.51}
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from loopline_drift_detector.domain.divergence import js_distance, ks_statistic, psi
from loopline_core.profiles.reference import FeatureProfile, NumericProfile


def explain(profile: FeatureProfile, values: Sequence[float] | Sequence[str]) -> dict[str, float]:
    if not values:
        return {"count": 0.0}
    if isinstance(profile, NumericProfile):
        x = np.sort(np.asarray(values, dtype=float))
        counts = np.bincount(np.searchsorted(profile.bin_edges, x, side="right"),
                             minlength=len(profile.bin_counts)).astype(float)
        out = {"count": float(x.size), "mean": float(x.mean()), "std": float(x.std()),
               "p05": float(np.quantile(x, 0.05)), "p50": float(np.quantile(x, 0.5)),
               "p95": float(np.quantile(x, 0.95)), "ks": ks_statistic(profile.cdf(x))}
    else:
        index = {c: i for i, c in enumerate(profile.frequencies)}
        counts = np.zeros(len(index) + 1)
        for v in values:
            counts[index.get(v, len(index))] += 1  # type: ignore[call-overload]
        labels = [*profile.frequencies, "(other)"]
        top = np.argsort(-counts, kind="stable")[:5]
        out = {"count": float(len(values)), **{f"share[{labels[i]}]": float(counts[i]) / len(values) for i in top}}
    reference = profile.bin_probabilities()
    out["psi"] = round(psi(reference, counts), 4)
    out["js"] = round(js_distance(reference, counts), 4)
    return out
