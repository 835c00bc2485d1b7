"""Per-model configuration: which detectors, their thresholds, minimum samples, warm-up.

The defaults meet the targets measured by ``make bench-drift`` (docs/drift.md):

- numeric features: CUSUM on normal scores against the reference (mean shifts,
  median delay about 23 after a 1σ shift) and a windowed KS test (shape and spread);
- categorical features: a windowed χ² test on category shares;
- error stream: HDDM_A at drift confidence 1e-4 (concept drift, needs no baseline);
- performance: a Bernoulli CUSUM against the validation error rate.

>>> config = MonitorConfig.from_mapping({"numeric": ["cusum", {"name": "psi", "params": {"threshold": 0.25}}],
...                                      "min_samples": 100})
>>> [s.name for s in config.numeric], config.min_samples, [s.name for s in config.concept]
(['cusum', 'psi'], 100, ['hddm_a'])
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from loopline_core.errors import InvalidArgument

from loopline_drift_detector.domain.catalogue import DetectorSpec

Specs = tuple[DetectorSpec, ...]


@dataclass(frozen=True)
class MonitorConfig:
    numeric: Specs = (DetectorSpec("cusum"), DetectorSpec("ks"))
    categorical: Specs = (DetectorSpec("chi2"),)
    concept: Specs = (DetectorSpec("hddm_a", {"drift_confidence": 1e-4}),)
    performance: Specs = (DetectorSpec("error_cusum"),)
    #: Detectors for named features, instead of the defaults for their kind.
    features: Mapping[str, Specs] = field(default_factory=dict)
    #: Valid values a stream takes before anything is fed to its detectors (cold start).
    warmup: int = 0
    #: A firing before a stream has fed this many values is not a decision.
    min_samples: int = 50
    #: A decision needs this many of the stream's detectors to fire within ``vote_window``.
    min_votes: int = 1
    vote_window: int = 200
    #: After a decision, a stream stays quiet for this many values (firings are counted).
    realert_after: int = 1000
    #: Trace ids of the latest predictions kept as evidence.
    evidence_traces: int = 5
    #: Recent values kept to describe the current distribution in the evidence.
    explain_window: int = 500

    def __post_init__(self) -> None:
        for name in ("warmup", "min_samples", "min_votes", "vote_window", "realert_after",
                     "evidence_traces", "explain_window"):
            if getattr(self, name) < (0 if name in ("warmup", "evidence_traces") else 1):
                raise InvalidArgument(f"{name} is too small: {getattr(self, name)}", field=name)
        for name, specs in [("numeric", self.numeric), ("categorical", self.categorical),
                            ("concept", self.concept), ("performance", self.performance),
                            *((f"features.{f}", s) for f, s in self.features.items())]:
            names = [s.name for s in specs]
            if len(set(names)) != len(names):
                raise InvalidArgument("a detector may appear once per stream", field=name)

    @classmethod
    def from_mapping(cls, doc: Mapping[str, Any]) -> MonitorConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(doc) - known
        if unknown:
            raise InvalidArgument(f"unknown settings {sorted(unknown)}", field=sorted(unknown)[0])
        values = dict(doc)
        for key in ("numeric", "categorical", "concept", "performance"):
            if key in values:
                values[key] = _specs(values[key], key)
        if "features" in values:
            values["features"] = {f: _specs(s, f"features.{f}") for f, s in values["features"].items()}
        return cls(**values)


def _specs(items: Any, where: str) -> Specs:
    out = []
    for item in items:
        if isinstance(item, str):
            out.append(DetectorSpec(item))
        elif isinstance(item, Mapping) and "name" in item:
            out.append(DetectorSpec(item["name"], dict(item.get("params", {}))))
        else:
            raise InvalidArgument(f"a detector is a name or {{name, params}}, not {item!r}", field=where)
    return tuple(out)
