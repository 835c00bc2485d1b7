"""Weighted splits, sticky keys, explicit versions and fallback choice of the routing table."""

from __future__ import annotations

import pytest

from loopline_core.errors import InvalidArgument, NotFound

from loopline_serving_gateway.domain.deployments import Deployment, Split, route_for
from loopline_serving_gateway.domain.routing import Route, RoutingTable, Target, Variant

C, K = Variant.CHAMPION, Variant.CANARY


def _route(revision: int = 1, weights: tuple[float, float] = (0.9, 0.1)) -> Route:
    return route_for(Deployment("iris", revision, (Split(1, weights[0], C), Split(2, weights[1], K))), None, None)


def test_a_90_10_split_is_within_3_points_over_10k_keys() -> None:
    route = _route()
    canary = sum(route.pick(f"user-{i}").version == 2 for i in range(10_000))
    assert abs(canary / 10_000 - 0.10) <= 0.03


def test_a_90_10_split_without_keys_is_within_3_points() -> None:
    route = _route()
    canary = sum(route.pick(None).version == 2 for _ in range(10_000))
    assert abs(canary / 10_000 - 0.10) <= 0.03


def test_sticky_keys_keep_their_variant_while_weights_stay_put() -> None:
    first = {f"user-{i}": _route(1).pick(f"user-{i}").version for i in range(2_000)}
    again = _route(7)  # a new revision with the same weights
    assert all(again.pick(key).version == version for key, version in first.items())


def test_explicit_versions_must_be_deployed() -> None:
    route = _route()
    assert route.explicit(2).variant == Variant.EXPLICIT
    with pytest.raises(NotFound, match="version 5 of model iris is not deployed"):
        route.explicit(5)


def test_the_previous_champion_becomes_the_fallback() -> None:
    old = _route(1, (1.0, 0.0))
    new = route_for(Deployment("iris", 2, (Split(2, 1.0, C),)), old, None)
    assert new.fallback is not None and new.fallback.version == 1
    assert new.fallback_for(new.targets[0]).version == 1  # type: ignore[union-attr]
    configured = route_for(Deployment("iris", 2, (Split(2, 1.0, C),)), old, 4)
    assert configured.fallback.version == 4  # type: ignore[union-attr]
    assert route_for(Deployment("iris", 1, (Split(1, 1.0, C),)), None, None).fallback_for(Target("iris", 1, 1, C)) \
        is None


def test_the_registrys_fallback_holds_on_a_fresh_gateway_and_over_its_own_memory() -> None:
    # a gateway started after the promotion has no previous route: the registry's fallback answers
    fresh = route_for(Deployment("iris", 2, (Split(2, 1.0, C),), fallback_version=1), None, None)
    assert fresh.fallback_for(fresh.targets[0]).version == 1  # type: ignore[union-attr]
    assert fresh.versions() == {1, 2}  # loaded and kept while it is the fallback
    # the registry saying "none" (after a rollback, say) wins over the old champion this gateway saw
    old = _route(2, (1.0, 0.0))
    rolled_back = route_for(Deployment("iris", 3, (Split(1, 1.0, C),), fallback_version=0), old, None)
    assert rolled_back.fallback is None
    # never a version that serves; a configured fallback wins over the registry's
    serving = route_for(Deployment("iris", 3, (Split(1, 1.0, C),), fallback_version=1), None, None)
    assert serving.fallback is None
    configured = route_for(Deployment("iris", 2, (Split(2, 1.0, C),), fallback_version=1), None, 4)
    assert configured.fallback.version == 4  # type: ignore[union-attr]


def test_a_canary_falls_back_to_the_champion() -> None:
    route = _route()
    assert route.fallback_for(route.targets[1]).version == 1  # type: ignore[union-attr]


def test_bad_deployments_and_unknown_models_are_named() -> None:
    with pytest.raises(InvalidArgument, match="no serving version"):
        route_for(Deployment("iris", 1, (Split(1, 0.0, C),)), None, None)
    with pytest.raises(NotFound, match="'nope' is not deployed"):
        RoutingTable().get("nope")


def test_the_table_switches_whole_routes() -> None:
    table = RoutingTable()
    table.switch(_route(1))
    table.switch(route_for(Deployment("iris", 2, (Split(3, 1.0, C),)), table.get("iris"), None))
    assert table.get("iris").revision == 2
    assert table.referenced() == {"iris.v3", "iris.v1"}
