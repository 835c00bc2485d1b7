"""Dataset snapshots: rows of one model's features and labels, their content hash,
and the deterministic train / validation / holdout split."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from loopline_core.errors import InvalidArgument


@dataclass(frozen=True)
class Snapshot:
    """``features`` FP32 [n, f] (columns ``feature_names``), ``labels`` [n] (class index or target)."""

    feature_names: tuple[str, ...]
    features: np.ndarray
    labels: np.ndarray
    #: Event times of the rows, where known (for the recorded time window).
    times: tuple[datetime | None, ...] = field(default=())
    #: How the rows were selected, recorded with the dataset version.
    query: str = ""

    def __post_init__(self) -> None:
        if self.features.ndim != 2 or self.features.shape[1] != len(self.feature_names):
            raise InvalidArgument(f"features must be [rows, {len(self.feature_names)}], got "
                                  f"{list(self.features.shape)}", field="features")
        if len(self.labels) != len(self.features):
            raise InvalidArgument(f"{len(self.labels)} labels for {len(self.features)} rows", field="labels")
        if not np.isfinite(self.features).all() or not np.isfinite(self.labels).all():
            raise InvalidArgument("features and labels must be finite numbers", field="features")

    def __len__(self) -> int:
        return len(self.labels)

    def content_sha256(self) -> str:
        """Hash of the names, values and labels in row order: equal rows, equal hash."""
        digest = hashlib.sha256()
        digest.update("\x1f".join(self.feature_names).encode())
        digest.update(np.ascontiguousarray(self.features, dtype="<f4").tobytes())
        digest.update(np.ascontiguousarray(self.labels, dtype="<f8").tobytes())
        return digest.hexdigest()

    def window(self) -> tuple[datetime | None, datetime | None]:
        known = [t for t in self.times if t is not None]
        return (min(known), max(known)) if known else (None, None)

    def subset(self, index: np.ndarray, query: str) -> Snapshot:
        times = tuple(self.times[i] for i in index) if self.times else ()
        return Snapshot(self.feature_names, self.features[index], self.labels[index], times, query)


@dataclass(frozen=True)
class Split:
    train: Snapshot
    validation: Snapshot
    holdout: Snapshot


def split(snapshot: Snapshot, *, seed: int, validation_share: float, holdout_share: float) -> Split:
    """A seeded permutation cut into three parts; the same rows and seed give the same parts."""
    n = len(snapshot)
    n_val = max(1, round(n * validation_share))
    n_hold = max(1, round(n * holdout_share))
    if n - n_val - n_hold < 2:
        raise InvalidArgument(f"{n} rows are too few to split into train, validation and holdout", field="rows")
    order = np.random.default_rng(seed).permutation(n)
    parent = snapshot.content_sha256()[:16]
    part = lambda name, idx: snapshot.subset(np.sort(idx), f"{name} of {parent} seed={seed}")  # noqa: E731
    return Split(part("train", order[n_val + n_hold:]), part("validation", order[:n_val]),
                 part("holdout", order[n_val:n_val + n_hold]))
