"""Model readiness through the gateway (V2 ModelReady, REST .../ready) says whether a request
would be answered now: Triton's READY for the versions a request can reach, not only a route."""

from __future__ import annotations

from gateway_fakes import FakeTriton

from loopline_serving_gateway.domain.deployments import Deployment, Split, route_for
from loopline_serving_gateway.domain.routing import RoutingTable, Variant
from loopline_serving_gateway.handlers.models import ModelCatalog

C, K = Variant.CHAMPION, Variant.CANARY


def _catalog() -> tuple[ModelCatalog, FakeTriton, list[str]]:
    table, triton, unready = RoutingTable(), FakeTriton(), []
    table.switch(route_for(Deployment("iris", 1, (Split(1, 1.0, C),)), None, None))
    table.switch(route_for(Deployment("iris", 2, (Split(1, 0.9, C), Split(2, 0.1, K))), table.find("iris"), None))
    triton.loaded = set(table.referenced())
    return ModelCatalog(table, triton, on_unready=unready.append), triton, unready


async def test_ready_when_triton_has_every_version_a_request_can_reach() -> None:
    catalog, _, unready = _catalog()
    assert await catalog.model_ready("iris", "") and await catalog.model_ready("iris", "2")
    assert not await catalog.model_ready("iris", "7") and not await catalog.model_ready("nope", "")
    assert not await catalog.model_ready("iris", "x") and unready == []


async def test_a_lost_canary_with_a_ready_fallback_is_still_ready_a_lost_champion_alone_is_not() -> None:
    catalog, triton, unready = _catalog()
    triton.loaded.discard("iris.v2")  # the canary's requests fall back to v1
    assert await catalog.model_ready("iris", "") and not await catalog.model_ready("iris", "2")
    assert "iris.v2" in unready  # told, so the reconciler loads it again
    triton.loaded.discard("iris.v1")  # nothing left to answer
    assert not await catalog.model_ready("iris", "")
    assert "iris.v1" in unready
