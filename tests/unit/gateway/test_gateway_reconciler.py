"""The reconciler with an in-memory registry and Triton: hash check, READY before switch,
failed loads keep the old route, unreferenced versions unloaded, retired models let go, workers
and concurrent loads. Lost versions loaded again: test_gateway_reconciler_heal.py; what an earlier
process left, collected at start: test_gateway_reconciler_collect.py."""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from pathlib import Path

import pytest
from gateway_fakes import SIGNATURE, CountingTriton, reconciler_world

from loopline_serving_gateway.adapters.registry import InMemoryRegistry, VersionInfo
from loopline_serving_gateway.domain.deployments import Deployment, Split
from loopline_serving_gateway.domain.routing import RoutingTable, Variant
from loopline_serving_gateway.handlers.reconciler import MARK, Reconciler

C = Variant.CHAMPION


async def test_versions_are_written_loaded_and_switched(tmp_path: Path) -> None:
    registry, triton, table, reconciler = reconciler_world(tmp_path)
    registry.deployments["iris"] = Deployment("iris", 1, (Split(1, 1.0, C),))
    await reconciler.sync_all()
    assert table.get("iris").targets[0].version == 1 and "iris.v1" in triton.loaded
    config = (tmp_path / "iris.v1" / "config.pbtxt").read_text()
    assert config.startswith(MARK) and 'name: "iris.v1"' in config and "dims: [ 4 ]" in config
    assert (tmp_path / "iris.v1" / "1" / "model.pt").read_bytes() == b"torchscript-1"

    registry.deployments["iris"] = Deployment("iris", 2, (Split(2, 1.0, C),))
    await reconciler.sync_model("iris")
    assert table.get("iris").targets[0].version == 2 and table.get("iris").fallback.version == 1  # type: ignore[union-attr]

    registry.deployments["iris"] = Deployment("iris", 3, (Split(3, 1.0, C),))
    await reconciler.sync_model("iris")
    assert triton.loaded == {"iris.v3", "iris.v2"}  # v1 is neither served nor the fallback any more
    assert not (tmp_path / "iris.v1").exists()


async def test_a_gateway_started_after_a_promotion_loads_the_registrys_fallback(tmp_path: Path) -> None:
    registry, triton, table, reconciler = reconciler_world(tmp_path)
    registry.deployments["iris"] = Deployment("iris", 2, (Split(2, 1.0, C),), fallback_version=1)
    await reconciler.sync_all()  # a fresh gateway: no route of its own to remember v1 by
    assert table.get("iris").fallback.version == 1 and triton.loaded == {"iris.v1", "iris.v2"}  # type: ignore[union-attr]
    registry.deployments["iris"] = Deployment("iris", 3, (Split(2, 1.0, C),), fallback_version=0)  # v1 archived
    await reconciler.sync_model("iris")
    assert table.get("iris").fallback is None and triton.loaded == {"iris.v2"}


async def test_a_tampered_artifact_or_failed_load_keeps_the_old_route(tmp_path: Path) -> None:
    registry, triton, table, reconciler = reconciler_world(tmp_path)
    registry.deployments["iris"] = Deployment("iris", 1, (Split(1, 1.0, C),))
    await reconciler.sync_all()
    sha = registry.versions[("iris", 2)].sha256
    registry.artifacts[sha] = b"tampered"
    registry.deployments["iris"] = Deployment("iris", 2, (Split(1, 0.5, C), Split(2, 0.5, Variant.CANARY)))
    await reconciler.sync_model("iris")
    assert table.get("iris").revision == 1 and "has sha256" in reconciler.errors["iris"]

    triton.load_fails.add("iris.v3")
    registry.deployments["iris"] = Deployment("iris", 3, (Split(3, 1.0, C),))
    await reconciler.sync_model("iris")
    assert table.get("iris").revision == 1 and "failed to load iris.v3" in reconciler.errors["iris"]


async def test_a_removed_deployment_removes_the_route(tmp_path: Path) -> None:
    registry, triton, table, reconciler = reconciler_world(tmp_path)
    registry.deployments["iris"] = Deployment("iris", 1, (Split(1, 1.0, C),))
    await reconciler.sync_all()
    del registry.deployments["iris"]
    await reconciler.sync_all()
    assert table.find("iris") is None and triton.loaded == set()


@pytest.mark.parametrize("by", ["event", "resync"])
async def test_a_retired_deployment_removes_the_route_and_unloads_its_versions(tmp_path: Path, by: str) -> None:
    """Retired in the registry: a new revision with no splits (RetireDeployment)."""
    registry, triton, table, reconciler = reconciler_world(tmp_path)
    registry.deployments["iris"] = Deployment("iris", 1, (Split(1, 0.9, C), Split(2, 0.1, Variant.CANARY)), (3,))
    await reconciler.sync_all()
    assert triton.loaded == {"iris.v1", "iris.v2", "iris.v3"}
    registry.deployments["iris"] = Deployment("iris", 2, ())
    await (reconciler.sync_model("iris") if by == "event" else reconciler.sync_all())
    assert table.find("iris") is None and triton.loaded == set()
    assert not any(tmp_path.glob("iris.v*"))
    registry.deployments["iris"] = Deployment("iris", 3, (Split(2, 1.0, C),))  # deployed again
    await reconciler.sync_model("iris")
    assert table.get("iris").targets[0].version == 2 and triton.loaded == {"iris.v2"}


async def test_a_version_another_worker_is_busy_with_is_unloaded_only_once_it_is_not(tmp_path: Path) -> None:
    registry, triton, table, reconciler = reconciler_world(tmp_path)
    asked: list[str] = []
    busy_until = {"iris.v1": 3}  # another worker still routes to v1 for its first three answers

    async def peers_busy(name: str) -> bool:
        asked.append(name)
        busy_until[name] = busy_until.get(name, 0) - 1
        return busy_until[name] >= 0

    reconciler.peers_busy = peers_busy
    registry.deployments["iris"] = Deployment("iris", 1, (Split(1, 1.0, C),))
    await reconciler.sync_all()
    assert asked == []  # nothing to unload
    registry.deployments["iris"] = Deployment("iris", 2, (Split(2, 1.0, C),))
    await reconciler.sync_model("iris")
    registry.deployments["iris"] = Deployment("iris", 3, (Split(3, 1.0, C),))
    await reconciler.sync_model("iris")
    assert asked == ["iris.v1"] * 4 and triton.loaded == {"iris.v3", "iris.v2"}
    assert reconciler.busy("iris.v3") and not reconciler.busy("iris.v1")


async def test_waiting_for_other_workers_is_bounded_by_the_drain_timeout(tmp_path: Path) -> None:
    registry, triton, table, _ = reconciler_world(tmp_path)
    reconciler = Reconciler(registry, triton, table, tmp_path, inflight=Counter(), drain_timeout_s=0.3)

    async def always_busy(name: str) -> bool:
        return True

    reconciler.peers_busy = always_busy
    for revision, version in enumerate((1, 2, 3), 1):
        registry.deployments["iris"] = Deployment("iris", revision, (Split(version, 1.0, C),))
        await reconciler.sync_model("iris")
    assert triton.loaded == {"iris.v3", "iris.v2"}  # a stuck worker does not hold an unload for ever


async def test_a_version_already_ready_from_the_same_artifact_is_not_loaded_again(tmp_path: Path) -> None:
    registry, triton, table, first = reconciler_world(tmp_path)
    loads: list[str] = []
    load = triton.load

    async def counted(name: str) -> None:
        loads.append(name)
        await load(name)

    triton.load = counted  # type: ignore[method-assign]
    registry.deployments["iris"] = Deployment("iris", 1, (Split(1, 1.0, C),))
    await first.sync_all()
    second = Reconciler(registry, triton, RoutingTable(), tmp_path, inflight=Counter())  # another worker
    await second.sync_all()
    assert loads == ["iris.v1"]  # the second found it READY, its entry holding the registry's artifact

    (tmp_path / "iris.v1" / "1" / "model.pt").write_bytes(b"something else")
    third = Reconciler(registry, triton, RoutingTable(), tmp_path, inflight=Counter())
    await third.sync_all()
    assert loads == ["iris.v1", "iris.v1"]  # not the artifact the registry has: written and loaded again
    assert (tmp_path / "iris.v1" / "1" / "model.pt").read_bytes() == b"torchscript-1"


async def test_deployments_load_concurrently_up_to_the_bound(tmp_path: Path) -> None:
    for bound in (1, 3):
        registry, triton, table = InMemoryRegistry(), CountingTriton(), RoutingTable()
        for model in ("a", "b", "c", "d", "e", "f", "g"):
            artifact = f"torchscript-{model}".encode()
            registry.add_version(VersionInfo(model, 1, hashlib.sha256(artifact).hexdigest(), *SIGNATURE), artifact)
            registry.deployments[model] = Deployment(model, 1, (Split(1, 1.0, C),))
        reconciler = Reconciler(registry, triton, table, tmp_path / str(bound), inflight=Counter(),
                                load_concurrency=bound)
        await reconciler.sync_all()
        assert triton.most == bound and len(triton.loads) == 7
        assert sorted(table.models()) == ["a", "b", "c", "d", "e", "f", "g"]


async def test_of_two_workers_applying_a_change_at_once_one_loads_and_the_other_finds_it_ready(
        tmp_path: Path) -> None:
    registry, triton, _, first = reconciler_world(tmp_path)
    triton = CountingTriton()
    first = Reconciler(registry, triton, RoutingTable(), tmp_path, inflight=Counter())
    second = Reconciler(registry, triton, RoutingTable(), tmp_path, inflight=Counter())
    registry.deployments["iris"] = Deployment("iris", 1, (Split(1, 1.0, C),))
    await asyncio.gather(first.sync_all(), second.sync_all())
    assert triton.loads == ["iris.v1"]  # the second waited for the entry's lock, then found v1 READY
    registry.deployments["iris"] = Deployment("iris", 2, (Split(2, 1.0, C),))
    await asyncio.gather(first.sync_model("iris"), second.sync_model("iris"))
    assert triton.loads == ["iris.v1", "iris.v2"]


async def test_a_version_routed_to_again_while_it_drains_is_kept(tmp_path: Path) -> None:
    registry, triton, table, _ = reconciler_world(tmp_path)
    inflight: Counter[str] = Counter()
    reconciler = Reconciler(registry, triton, table, tmp_path, inflight=inflight)
    for revision, version in enumerate((1, 2), 1):
        registry.deployments["iris"] = Deployment("iris", revision, (Split(version, 1.0, C),))
        await reconciler.sync_model("iris")
    inflight["iris.v1"] = 1  # a request to v1 (the fallback until now) still in flight
    registry.deployments["iris"] = Deployment("iris", 3, (Split(3, 1.0, C),))
    moving_on = asyncio.create_task(reconciler.sync_model("iris"))  # v1 unreferenced: drains
    await asyncio.sleep(0.1)
    assert not moving_on.done()
    registry.deployments["iris"] = Deployment("iris", 4, (Split(1, 1.0, C),))  # rolled back to v1
    await reconciler.sync_model("iris")
    inflight["iris.v1"] = 0
    await moving_on
    assert table.get("iris").targets[0].version == 1 and "iris.v1" in triton.loaded
    assert (tmp_path / "iris.v1" / "1" / "model.pt").exists()
