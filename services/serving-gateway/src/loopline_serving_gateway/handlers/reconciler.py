"""Reconciler: makes Triton hold exactly the versions the registry wants served.

For each deployment: materialise every wanted version (artifact hash verified),
load it through the repository API, wait until READY, and only then switch the
model's route in one assignment. If any wanted version fails, the old route
stays in place and the next sync tries again. A model whose deployment is gone or
retired (no splits) loses its route. Versions no route references any
more are unloaded once their in-flight requests have drained, here and, with
several worker processes, in the others too (``peers_busy``).

Deployments are applied concurrently, at most ``load_concurrency`` Triton loads at
a time (Triton loads models on several threads: four models here load in about
half the time of one after another). Each Triton model's writing, loading and
unloading is done under ``entry_lock``, so of several workers one loads and the
others wait for it and find the version READY, instead of loading it again.

A routed version Triton no longer reports READY (Triton restarted, or it was unloaded
behind the gateway's back) is loaded again: checked when a call to it fails
(``suspect``, at most once a second) and for every routed version at each resync.
Without this a route kept pointing at a model Triton had lost until its deployment
changed.

At its first sync a gateway also removes what an earlier process left in the repository
(``leftovers``); the entries it writes begin with ``leftovers.MARK`` so that they can be told
from anything else there.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import shutil
import tempfile
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Protocol

from loopline_core.errors import FailedPrecondition, LooplineError
from loopline_core.triton.repository import TensorConfig, entry_lock, entry_sha256, render_config, write_entry

from loopline_serving_gateway.adapters.registry import RegistryPort, VersionInfo
from loopline_serving_gateway.domain.deployments import Deployment, route_for
from loopline_serving_gateway.domain.routing import RoutingTable, triton_name
from loopline_serving_gateway.handlers.leftovers import MARK, collect_leftovers

log = logging.getLogger(__name__)


class TritonControl(Protocol):
    async def load(self, name: str) -> None: ...
    async def unload(self, name: str) -> None: ...
    async def is_ready(self, name: str, version: str = "") -> bool: ...


class Reconciler:
    def __init__(self, registry: RegistryPort, triton: TritonControl, table: RoutingTable, repository: Path, *,
                 inflight: Counter[str], backend: str = "python", gpu: bool = False, threads: int = 1,
                 fallback_versions: dict[str, int] | None = None, drain_timeout_s: float = 30.0,
                 load_concurrency: int = 4, on_failure: Callable[[str], None] = lambda model: None) -> None:
        self._registry = registry
        self._triton = triton
        self._table = table
        self._repository = repository
        self._inflight = inflight
        self._backend = backend
        self._gpu = gpu
        self._threads = threads
        self._fallbacks = fallback_versions or {}
        self._drain_timeout_s = drain_timeout_s
        self._on_failure = on_failure
        self._loaded: set[str] = set()
        self._lock = asyncio.Lock()
        self._loads = asyncio.Semaphore(load_concurrency)
        self.errors: dict[str, str] = {}
        self._suspects: set[str] = set()
        self._heal_errors: dict[str, str] = {}
        self._suspected = asyncio.Event()
        self._collected = False  # what an earlier process left collected (once, at the first sync_all)
        #: With several worker processes: whether another one still routes to a Triton model or
        #: has requests to it in flight (each applies a deployment change on its own).
        self.peers_busy: Callable[[str], Awaitable[bool]] | None = None

    def busy(self, name: str) -> bool:
        """Whether this process routes to Triton model ``name`` or has requests to it in flight."""
        return self._inflight[name] > 0 or name in self._table.referenced()

    async def sync_all(self) -> None:
        """Read every deployment and apply it (start-up and periodic resync)."""
        deployments = [d for d in await self._registry.list_deployments() if not d.retired]
        async with self._lock:
            async with asyncio.TaskGroup() as group:
                for deployment in deployments:
                    group.create_task(self._apply(deployment))
            wanted = {d.model: d for d in deployments}
            for model in set(self._table.models()) - wanted.keys():
                self._table.remove(model)
        await self.heal(self._table.referenced())
        await self.unload_unreferenced()
        if not self._collected:
            self._collected = True
            await collect_leftovers(self._repository, self._registry, self._triton, self._table, wanted,
                                    peers_busy=self.peers_busy, forget=self._loaded.discard)

    async def sync_model(self, model: str) -> None:
        """Re-read one model's deployment (on DeploymentChanged, promotion, roll-back)."""
        deployment = await self._registry.get_deployment(model)
        async with self._lock:
            if deployment is None or deployment.retired:
                self._table.remove(model)
            else:
                await self._apply(deployment)
        await self.unload_unreferenced()

    async def _apply(self, deployment: Deployment) -> None:
        previous = self._table.find(deployment.model)
        if previous is not None and previous.revision == deployment.revision:
            return
        try:
            outcomes = await asyncio.gather(*(self._ensure_loaded(deployment.model, version)
                                              for version in sorted(deployment.versions())), return_exceptions=True)
            failures = [o for o in outcomes if isinstance(o, BaseException)]
            if failures:
                raise failures[0]
            route = route_for(deployment, previous, self._fallbacks.get(deployment.model))
            if route.fallback is not None:
                await self._ensure_loaded(deployment.model, route.fallback.version)
        except (LooplineError, OSError) as exc:  # OSError: the repository could not be written
            self.errors[deployment.model] = str(exc)
            self._on_failure(deployment.model)
            log.error("deployment %s r%s not applied, previous route kept: %s",
                      deployment.model, deployment.revision, exc)
            return
        self.errors.pop(deployment.model, None)
        self._table.switch(route)
        log.info("route of %s switched to revision %s", deployment.model, deployment.revision)

    async def _ensure_loaded(self, model: str, version: int) -> None:
        name = triton_name(model, version)
        if name in self._loaded and await self._triton.is_ready(name, str(version)):
            return
        info = await self._registry.get_version(model, version)
        async with self._loads, entry_lock(self._repository, name):
            if (await self._triton.is_ready(name, str(version))
                    and await asyncio.to_thread(entry_sha256, self._repository, name, version) == info.sha256):
                # READY from the same artifact: loaded by another worker (maybe while this one
                # waited for the lock), or before this process restarted. Loading again would
                # make Triton load it anew.
                self._loaded.add(name)
                log.info("%s is READY in Triton from the registry's artifact: not loaded again", name)
                return
            artifact = await self._registry.download(info.sha256)
            digest = hashlib.sha256(artifact).hexdigest()
            if digest != info.sha256:
                raise FailedPrecondition(
                    f"artifact of {model} v{version} has sha256 {digest}, registry says {info.sha256}")
            self._materialise(name, info, artifact)
            await self._triton.load(name)
            if not await self._triton.is_ready(name, str(version)):
                raise FailedPrecondition(f"Triton loaded {name} but does not report version {version} READY")
            self._loaded.add(name)
            log.info("loaded %s into Triton", name)

    def suspect(self, name: str) -> None:
        """A call to Triton model ``name`` failed: have ``heal_forever`` check it (off the request path)."""
        self._suspects.add(name)
        self._suspected.set()

    async def heal(self, names: Iterable[str]) -> None:
        """Load again each of these Triton models that a route references and Triton does not
        report READY. A failure is logged and counted; the next check tries again."""
        wanted = set(names)
        for model in self._table.models():
            route = self._table.find(model)
            for version in sorted(route.versions()) if route is not None else ():
                name = triton_name(model, version)
                if name not in wanted:
                    continue
                try:
                    if await self._triton.is_ready(name, str(version)):
                        self._heal_errors.pop(name, None)
                        continue
                    log.warning("%s is routed to but Triton does not report it READY: loading it again", name)
                    await self._ensure_loaded(model, version)
                    self._heal_errors.pop(name, None)
                except (LooplineError, OSError) as exc:
                    self._on_failure(model)
                    if self._heal_errors.get(name) != str(exc):  # once per distinct error, not every second
                        self._heal_errors[name] = str(exc)
                        log.error("could not load %s again (tried again while calls to it fail): %s", name, exc)

    async def heal_forever(self, min_interval_s: float = 1.0) -> None:
        """Check the models ``suspect`` was told of, at most once every ``min_interval_s``
        however many calls fail meanwhile."""
        while True:
            await self._suspected.wait()
            self._suspected.clear()
            names, self._suspects = self._suspects, set()
            await self.heal(names)
            await asyncio.sleep(min_interval_s)

    def _materialise(self, name: str, info: VersionInfo, artifact: bytes) -> None:
        config = MARK + render_config(
            name,
            [TensorConfig(t.name, t.datatype, t.shape[1:]) for t in info.inputs],
            [TensorConfig(t.name, t.datatype, t.shape[1:]) for t in info.outputs],
            backend=self._backend, gpu=self._gpu, threads=self._threads,
        )
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "model.pt"
            path.write_bytes(artifact)
            write_entry(self._repository, name, info.version, path, config)

    async def unload_unreferenced(self) -> None:
        stale = self._loaded - self._table.referenced()
        for name in sorted(stale):
            await self._drain(name)
            async with entry_lock(self._repository, name):
                if name in self._table.referenced():
                    continue  # routed to again while it drained (a roll-back): kept
                try:
                    await self._triton.unload(name)
                except LooplineError as exc:
                    log.warning("could not unload %s: %s", name, exc)
                    continue
                self._loaded.discard(name)
                shutil.rmtree(self._repository / name, ignore_errors=True)
            log.info("unloaded %s", name)

    async def _drain(self, name: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._drain_timeout_s
        while self._inflight[name] > 0 and loop.time() < deadline:
            await asyncio.sleep(0.05)
        peers_busy = self.peers_busy
        while peers_busy is not None and loop.time() < deadline and await peers_busy(name):
            await asyncio.sleep(0.05)

    async def resync_forever(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.sync_all()
            except LooplineError as exc:
                log.warning("periodic resync failed: %s", exc)
