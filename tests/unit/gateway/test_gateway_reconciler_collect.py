"""At a gateway's start, the repository entries no deployment uses are unloaded and removed:
those of models no longer deployed, and versions a deployed model no longer serves, shadows or
falls back to; never an entry someone else wrote, one deployed meanwhile, or one another worker
routes to."""

from __future__ import annotations

from pathlib import Path

from gateway_fakes import FakeTriton, reconciler_world

from loopline_serving_gateway.domain.deployments import Deployment, Split
from loopline_serving_gateway.domain.routing import Variant
from loopline_serving_gateway.handlers.leftovers import MARK

C = Variant.CHAMPION


def _left(tmp_path: Path, triton: FakeTriton, *names: str, theirs: tuple[str, ...] = ()) -> None:
    """Entries an earlier process wrote (``theirs``: in the repository, not written by a gateway), loaded."""
    for name in names:
        (tmp_path / name / "1").mkdir(parents=True)
        mark = "" if name in theirs else MARK
        (tmp_path / name / "config.pbtxt").write_text(f'{mark}name: "{name}"\n')
        triton.loaded.add(name)


def _entries(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("."))


async def test_at_start_entries_of_models_no_longer_deployed_are_unloaded_and_removed(tmp_path: Path) -> None:
    """Retired (or removed) while no gateway ran: the versions a previous process loaded go."""
    registry, triton, table, reconciler = reconciler_world(tmp_path)
    _left(tmp_path, triton, "iris.v1", "iris.v2", "gone.v1", "retired.v3", "later.v1", "demo-skeleton", "theirs.v1",
          theirs=("theirs.v1",))
    (tmp_path / "notes.txt").write_text("not an entry")
    # iris: from a registry that does not state fallbacks, its other versions are kept (iris.v2)
    registry.deployments["iris"] = Deployment("iris", 1, (Split(1, 1.0, C),))
    registry.deployments["retired"] = Deployment("retired", 4, ())
    listed = registry.list_deployments

    async def list_then_deploy_later() -> list[Deployment]:
        found = await listed()  # "later" is deployed right after the list: it is asked about again
        registry.deployments["later"] = Deployment("later", 1, (Split(1, 1.0, C),))
        return found

    registry.list_deployments = list_then_deploy_later  # type: ignore[method-assign]
    await reconciler.sync_all()
    assert triton.loaded == {"iris.v1", "iris.v2", "later.v1", "demo-skeleton", "theirs.v1"}
    assert _entries(tmp_path) == [
        "demo-skeleton", "iris.v1", "iris.v2", "later.v1", "notes.txt", "theirs.v1"]
    # once, at start: a later resync leaves what it does not route to others' unloading
    (tmp_path / "gone.v2").mkdir()
    (tmp_path / "gone.v2" / "config.pbtxt").write_text(MARK)
    triton.loaded.add("gone.v2")
    await reconciler.sync_all()
    assert "gone.v2" in triton.loaded


async def test_at_start_versions_a_deployed_model_no_longer_uses_are_unloaded_and_removed(tmp_path: Path) -> None:
    """Restarted during a promotion, say: the versions before it stay behind."""
    registry, triton, table, reconciler = reconciler_world(tmp_path)
    _left(tmp_path, triton, "iris.v1", "iris.v2", "iris.v3", "iris.v7", "iris.v8", "iris.v9")
    registry.deployments["iris"] = Deployment("iris", 5, (Split(3, 1.0, C),), fallback_version=2)
    listed = registry.list_deployments

    async def list_then_shadow_v9() -> list[Deployment]:
        found = await listed()  # then v9 is shadowed: asked about again, it is kept
        registry.deployments["iris"] = Deployment("iris", 6, (Split(3, 1.0, C),), (9,), fallback_version=2)
        return found

    registry.list_deployments = list_then_shadow_v9  # type: ignore[method-assign]
    reconciler.peers_busy = _busy_with("iris.v7")  # another worker still routes to v7
    await reconciler.sync_all()
    assert triton.loaded == {"iris.v2", "iris.v3", "iris.v7", "iris.v9"}  # fallback, served, busy, shadowed
    assert _entries(tmp_path) == ["iris.v2", "iris.v3", "iris.v7", "iris.v9"]
    assert table.get("iris").fallback.version == 2  # type: ignore[union-attr]


def _busy_with(*names: str):  # type: ignore[no-untyped-def]
    async def busy(name: str) -> bool:
        return name in names
    return busy
