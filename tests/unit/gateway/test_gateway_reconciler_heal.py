"""A routed version Triton lost (restarted, or unloaded behind the gateway's back) is loaded again:
after a failed call, at a resync, and while Triton is unreachable, retried with one log line."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest
from gateway_fakes import CountingTriton, FakeTriton, reconciler_world

from loopline_core.errors import Unavailable

from loopline_serving_gateway.domain.deployments import Deployment, Split
from loopline_serving_gateway.domain.routing import Variant
from loopline_serving_gateway.handlers.reconciler import Reconciler

C = Variant.CHAMPION


async def test_a_routed_version_triton_lost_is_loaded_again_after_a_failed_call(tmp_path: Path) -> None:
    from gateway_fakes import request

    from loopline_core.errors import InvalidArgument
    from loopline_serving_gateway.handlers.inference import Inference
    from loopline_serving_gateway.metrics import GatewayMetrics
    from loopline_serving_gateway.settings import GatewaySettings

    registry, _, table, _ = reconciler_world(tmp_path)
    triton = CountingTriton()
    reconciler = Reconciler(registry, triton, table, tmp_path, inflight=Counter())
    inference = Inference(table, triton, None, GatewayMetrics(), GatewaySettings(), Counter(),
                          on_unavailable=reconciler.suspect)
    for revision, version in enumerate((1, 2), 1):
        registry.deployments["iris"] = Deployment("iris", revision, (Split(version, 1.0, C),))
        await reconciler.sync_model("iris")
    healer = asyncio.create_task(reconciler.heal_forever(min_interval_s=0.05))
    try:
        triton.loaded.clear()  # Triton restarted: nothing loaded
        with pytest.raises(Unavailable):  # v2 failed, and so did its fallback v1
            await inference.infer(request("iris"))
        async with asyncio.timeout(5):
            while triton.loaded != {"iris.v1", "iris.v2"}:
                await asyncio.sleep(0.01)
        assert (await inference.infer(request("iris"))).version == 2
        assert triton.loads[-2:] in (["iris.v1", "iris.v2"], ["iris.v2", "iris.v1"])

        async def refused(*args: object) -> None:
            raise InvalidArgument("Triton: unexpected shape for input 'features'")

        triton.infer = refused  # type: ignore[method-assign,assignment]
        asked: list[str] = []
        triton.is_ready = lambda name, version="": asked.append(name) or FakeTriton.is_ready(triton, name)  # type: ignore[method-assign]
        with pytest.raises(InvalidArgument):  # bad input says nothing about the model: not checked
            await inference.infer(request("iris"))
        await asyncio.sleep(0.2)
        assert asked == []
    finally:
        healer.cancel()

    triton.loaded.discard("iris.v1")  # lost, and no call failed: the periodic resync finds it
    await reconciler.sync_all()
    assert triton.loaded == {"iris.v1", "iris.v2"} and table.get("iris").revision == 2


async def test_while_triton_is_unreachable_a_lost_version_is_retried_and_logged_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    registry, triton, table, reconciler = reconciler_world(tmp_path)
    registry.deployments["iris"] = Deployment("iris", 1, (Split(1, 1.0, C),))
    await reconciler.sync_all()
    down = True

    async def is_ready(name: str, version: str = "") -> bool:
        if down:
            raise Unavailable("Triton: connection refused")
        return name in triton.loaded

    triton.is_ready = is_ready  # type: ignore[method-assign]
    triton.loaded.clear()
    for _ in range(5):
        await reconciler.heal({"iris.v1"})
    failures = [r for r in caplog.records if "could not load iris.v1 again" in r.getMessage()]
    assert len(failures) == 1 and "connection refused" in failures[0].getMessage()
    down = False
    await reconciler.heal({"iris.v1"})
    assert "iris.v1" in triton.loaded
