"""Deployments: the desired traffic split of one model, changed under a revision number.

>>> from datetime import UTC, datetime
>>> at = datetime(2026, 1, 1, tzinfo=UTC)
>>> first = plan(None, "m", 0, [TrafficSplit(1, 1.0, Variant.CHAMPION)], [], at=at, actor="ops", reason="")
>>> first.revision
1
>>> plan(first, "m", 0, first.splits, [], at=at, actor="ops", reason="")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
loopline_core.errors.FailedPrecondition: expected_revision: deployment of m is at revision 1, not 0; ...
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from loopline_core.errors import FailedPrecondition, InvalidArgument

from loopline_registry.domain.names import check_text

MAX_SPLITS = 16
MAX_SHADOWS = 8
WEIGHT_TOLERANCE = 1e-6


class Variant(StrEnum):
    CHAMPION = "champion"
    CANARY = "canary"


@dataclass(frozen=True)
class TrafficSplit:
    version: int
    weight: float
    variant: Variant


@dataclass(frozen=True)
class Deployment:
    model: str
    revision: int
    splits: tuple[TrafficSplit, ...]
    shadow_versions: tuple[int, ...]
    updated_at: datetime
    updated_by: str
    reason: str = ""
    #: The version that answers when a serving one fails at Triton (0: none): the champion this
    #: deployment replaced, else the one its predecessor had (``fallback_after``). Kept in the
    #: registry, so every gateway replica, and one started later, falls back to the same version.
    #: None: not recorded (revisions from before the registry kept it, and the canary steps after
    #: them until a promotion); gateways then keep the previous champion they saw themselves.
    fallback_version: int | None = 0

    def live_versions(self) -> list[int]:
        """Versions that answer live traffic (shadows only see a copy)."""
        return [s.version for s in self.splits if s.weight > 0]

    def champion_version(self) -> int:
        return next(s.version for s in self.splits if s.variant == Variant.CHAMPION)

    @property
    def retired(self) -> bool:
        """Taken out of service (``retire``): no version takes traffic, none is mirrored."""
        return not self.splits


def _check_splits(splits: Sequence[TrafficSplit]) -> None:
    if not splits or len(splits) > MAX_SPLITS:
        raise InvalidArgument(f"splits must name 1 to {MAX_SPLITS} versions", field="splits")
    versions = [s.version for s in splits]
    if len(set(versions)) != len(versions):
        raise InvalidArgument("splits name a version more than once", field="splits")
    for split in splits:
        if split.version < 1:
            raise InvalidArgument(f"split version must be positive, got {split.version}", field="splits.version")
        if not math.isfinite(split.weight) or not 0 <= split.weight <= 1:
            raise InvalidArgument(f"weight of version {split.version} must be in [0, 1]", field="splits.weight")
    total = math.fsum(s.weight for s in splits)
    if abs(total - 1.0) > WEIGHT_TOLERANCE:
        raise InvalidArgument(f"weights must sum to 1, they sum to {total:.6g}", field="splits.weight")
    champions = [s for s in splits if s.variant == Variant.CHAMPION]
    if len(champions) != 1:
        raise InvalidArgument("exactly one split must be the champion variant, the others canary",
                              field="splits.variant")


def _check_shadows(shadows: Sequence[int], splits: Sequence[TrafficSplit]) -> None:
    if len(shadows) > MAX_SHADOWS:
        raise InvalidArgument(f"at most {MAX_SHADOWS} shadow versions", field="shadow_versions")
    if len(set(shadows)) != len(shadows) or any(v < 1 for v in shadows):
        raise InvalidArgument("shadow versions must be distinct positive numbers", field="shadow_versions")
    overlap = set(shadows) & {s.version for s in splits}
    if overlap:
        raise InvalidArgument(f"versions {sorted(overlap)} cannot be both live and shadow", field="shadow_versions")


def _check_revision(current: Deployment | None, model: str, expected_revision: int) -> int:
    revision = current.revision if current else 0
    if expected_revision != revision:
        raise FailedPrecondition(
            f"deployment of {model} is at revision {revision}, not {expected_revision}; re-read it and retry",
            field="expected_revision")
    return revision


def fallback_after(current: Deployment | None, splits: Sequence[TrafficSplit]) -> int | None:
    """The fallback of a deployment that serves ``splits`` after ``current``: the champion it
    replaces when that no longer takes live traffic (a promotion's old champion), else the
    fallback ``current`` had while it does not take live traffic either (None: still not
    recorded); 0 when neither.

    >>> at = datetime(2026, 1, 1)
    >>> v1 = Deployment("m", 1, (TrafficSplit(1, 1.0, Variant.CHAMPION),), (), at, "ops")
    >>> canary = (TrafficSplit(1, 0.9, Variant.CHAMPION), TrafficSplit(2, 0.1, Variant.CANARY))
    >>> fallback_after(v1, canary)  # v1 still serves: no fallback yet
    0
    >>> fallback_after(v1, (TrafficSplit(2, 1.0, Variant.CHAMPION),))  # promoted: the old champion
    1
    >>> unrecorded = Deployment("m", 1, (TrafficSplit(1, 1.0, Variant.CHAMPION),), (), at, "ops", "", None)
    >>> fallback_after(unrecorded, canary) is None  # a canary step keeps "not recorded"
    True
    >>> fallback_after(unrecorded, (TrafficSplit(2, 1.0, Variant.CHAMPION),))  # a promotion records it
    1
    """
    live = {s.version for s in splits if s.weight > 0}
    if current is None:
        return 0
    if current.splits:
        champion = current.champion_version()
        if champion not in live:
            return champion
    inherited = current.fallback_version
    return inherited if inherited is None or inherited not in live else 0


def plan(current: Deployment | None, model: str, expected_revision: int, splits: Sequence[TrafficSplit],
         shadows: Sequence[int], *, at: datetime, actor: str, reason: str) -> Deployment:
    """The next deployment of ``model``, if the caller saw the current revision (a retired
    deployment too: this serves the model again). Its fallback: ``fallback_after``."""
    revision = _check_revision(current, model, expected_revision)
    _check_splits(splits)
    _check_shadows(shadows, splits)
    return Deployment(model, revision + 1, tuple(splits), tuple(shadows), at, actor,
                      check_text(reason, "reason", 1024), fallback_after(current, splits))


def retire(current: Deployment | None, model: str, expected_revision: int, *, at: datetime, actor: str,
           reason: str) -> Deployment:
    """The deployment of ``model`` taken out of service: its next revision, with no splits, no
    shadows and no fallback, if the caller saw the current revision. Its history stays (what
    served when)."""
    if current is None or current.retired:
        raise FailedPrecondition(f"{model} is not deployed; there is nothing to retire", field="model")
    revision = _check_revision(current, model, expected_revision)
    return Deployment(model, revision + 1, (), (), at, actor, check_text(reason, "reason", 1024))
