"""The routing table: which Triton model answers a request for a logical model.

A ``Route`` is immutable; the table swaps a model's whole route in one assignment,
so a request sees either the old or the new route, never a mix.

>>> route = Route("iris", 3, (Target("iris", 1, 0.9, Variant.CHAMPION), Target("iris", 2, 0.1, Variant.CANARY)))
>>> route.pick("user-42") is route.pick("user-42")
True
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from enum import IntEnum

from loopline_core.errors import InvalidArgument, NotFound


class Variant(IntEnum):
    """Mirrors loopline.common.v1.Variant (same numbers)."""

    CHAMPION = 1
    CANARY = 2
    SHADOW = 3
    EXPLICIT = 4
    FALLBACK = 5


def triton_name(model: str, version: int) -> str:
    """One Triton model per logical version, so a broken version never touches another."""
    return f"{model}.v{version}"


@dataclass(frozen=True)
class Target:
    model: str
    version: int
    weight: float
    variant: Variant

    @property
    def triton_model(self) -> str:
        return triton_name(self.model, self.version)


def _unit_interval(key: str) -> float:
    """A stable position in [0, 1) for a request key, the same in every process."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


@dataclass(frozen=True)
class Route:
    model: str
    revision: int
    targets: tuple[Target, ...]
    shadows: tuple[Target, ...] = ()
    #: Who answers when the chosen target fails (previous champion or a configured version).
    fallback: Target | None = None
    _cumulative: tuple[float, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.targets:
            raise InvalidArgument(f"deployment of {self.model} has no serving version", field="splits")
        total = sum(t.weight for t in self.targets)
        if total <= 0:
            raise InvalidArgument(f"weights of {self.model} sum to {total}", field="weight")
        running, edges = 0.0, []
        for target in self.targets:
            running += target.weight / total
            edges.append(running)
        object.__setattr__(self, "_cumulative", tuple(edges))

    def pick(self, key: str | None) -> Target:
        """Weighted choice; with a key the same key always lands on the same target."""
        point = _unit_interval(f"{self.model}\x00{key}") if key else random.random()
        for target, edge in zip(self.targets, self._cumulative, strict=True):
            if point < edge:
                return target
        return self.targets[-1]

    def explicit(self, version: int) -> Target:
        for target in (*self.targets, *self.shadows, *((self.fallback,) if self.fallback else ())):
            if target.version == version:
                return Target(self.model, version, 1.0, Variant.EXPLICIT)
        raise NotFound(f"version {version} of model {self.model} is not deployed", field="model_version")

    def fallback_for(self, failed: Target) -> Target | None:
        candidates = [self.fallback] if self.fallback else []
        candidates += [t for t in self.targets if t.variant == Variant.CHAMPION]
        for candidate in candidates:
            if candidate is not None and candidate.version != failed.version:
                return Target(self.model, candidate.version, 1.0, Variant.FALLBACK)
        return None

    def versions(self) -> set[int]:
        found = {t.version for t in (*self.targets, *self.shadows)}
        return found | ({self.fallback.version} if self.fallback else set())


class RoutingTable:
    def __init__(self) -> None:
        self._routes: dict[str, Route] = {}

    def get(self, model: str) -> Route:
        route = self._routes.get(model)
        if route is None:
            raise NotFound(f"model {model!r} is not deployed", field="model_name")
        return route

    def find(self, model: str) -> Route | None:
        return self._routes.get(model)

    def switch(self, route: Route) -> None:
        self._routes[route.model] = route

    def remove(self, model: str) -> None:
        self._routes.pop(model, None)

    def models(self) -> list[str]:
        return sorted(self._routes)

    def referenced(self) -> set[str]:
        """Triton model names any route still points at."""
        return {triton_name(r.model, v) for r in self._routes.values() for v in r.versions()}
