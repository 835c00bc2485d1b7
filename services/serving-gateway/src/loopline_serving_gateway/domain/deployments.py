"""Desired deployments as the gateway sees them (transport-neutral)."""

from __future__ import annotations

from dataclasses import dataclass

from loopline_serving_gateway.domain.routing import Route, Target, Variant


@dataclass(frozen=True)
class Split:
    version: int
    weight: float
    variant: Variant


@dataclass(frozen=True)
class Deployment:
    model: str
    revision: int
    splits: tuple[Split, ...]
    shadow_versions: tuple[int, ...] = ()
    #: The registry's fallback for this revision (0: none); None when the registry does not say
    #: (one older than the field): the route then keeps the previous champion it saw itself.
    fallback_version: int | None = None

    @property
    def retired(self) -> bool:
        """Taken out of service in the registry (no splits): routed like a model with no deployment."""
        return not self.splits

    def versions(self) -> set[int]:
        return {s.version for s in self.splits if s.weight > 0} | set(self.shadow_versions)

    def may_use(self, version: int) -> bool:
        """Whether a gateway may send requests to ``version`` under this deployment: served,
        shadowed or its fallback; with no fallback stated (the registry does not say), any version
        may be some gateway's remembered fallback. A retired deployment uses none."""
        if self.retired:
            return False
        if self.fallback_version is None:
            return True
        return version in self.versions() or version == self.fallback_version


def route_for(deployment: Deployment, previous: Route | None, fallback_version: int | None) -> Route:
    """The route that serves ``deployment``. Its fallback: the version configured for the model,
    else the registry's (the champion the deployment replaced: the same on every gateway, and on
    one started after the change), else, from a registry that does not say, the old champion of
    ``previous`` (what this gateway saw itself)."""
    model = deployment.model
    targets = tuple(Target(model, s.version, s.weight, s.variant if s.variant != Variant.SHADOW else Variant.CANARY)
                    for s in deployment.splits if s.weight > 0 and s.variant != Variant.SHADOW)
    shadows = tuple(Target(model, v, 0.0, Variant.SHADOW) for v in deployment.shadow_versions)
    shadows += tuple(Target(model, s.version, 0.0, Variant.SHADOW)
                     for s in deployment.splits if s.variant == Variant.SHADOW)
    fallback = None
    if fallback_version is not None:
        fallback = Target(model, fallback_version, 0.0, Variant.FALLBACK)
    elif deployment.fallback_version is not None:
        if deployment.fallback_version and deployment.fallback_version not in {t.version for t in targets}:
            fallback = Target(model, deployment.fallback_version, 0.0, Variant.FALLBACK)
    elif previous is not None:
        serving = {t.version for t in targets}
        old = [t for t in previous.targets if t.variant == Variant.CHAMPION and t.version not in serving]
        fallback = Target(model, old[0].version, 0.0, Variant.FALLBACK) if old else previous.fallback
        if fallback is not None and fallback.version in serving:
            fallback = None
    return Route(model, deployment.revision, targets, shadows, fallback)
