"""What an earlier gateway process left in Triton's model repository, removed at start.

A gateway unloads only what it loaded itself. So the versions of a model retired or removed
while no gateway ran, and the versions a deployed model stopped using while its gateway was
down (one restarted during a promotion, say), stayed loaded in Triton (a python-backend
process each) until Triton restarted. At its first sync a gateway therefore removes the
repository entries no deployment uses: unloaded if Triton has them, folder removed.

Only entries a gateway wrote are candidates: every config.pbtxt the reconciler writes begins
with ``MARK``, so a folder someone else put in the repository is never touched.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from loopline_core.errors import LooplineError
from loopline_core.triton.repository import entry_lock

from loopline_serving_gateway.adapters.registry import RegistryPort
from loopline_serving_gateway.domain.deployments import Deployment
from loopline_serving_gateway.domain.routing import RoutingTable

if TYPE_CHECKING:  # the reconciler's port (it imports this module)
    from loopline_serving_gateway.handlers.reconciler import TritonControl

log = logging.getLogger(__name__)
#: First line of the config.pbtxt of every entry the reconciler writes (a protobuf text comment): what
#: tells a gateway's own entries from anything else in the repository.
MARK = "# written by the Loopline serving gateway; removed once its model is no longer deployed\n"


async def collect_leftovers(repository: Path, registry: RegistryPort, triton: TritonControl, table: RoutingTable,
                            deployments: dict[str, Deployment], *,
                            peers_busy: Callable[[str], Awaitable[bool]] | None,
                            forget: Callable[[str], None]) -> None:
    """Unload and remove the marked entries no deployment may use (``Deployment.may_use``).

    ``deployments`` are those just applied; each candidate's model is asked about again right
    before, and the entry's lock taken (one deployed or shadowed meanwhile is left alone), and
    an entry this process's ``table`` or another worker (``peers_busy``) routes to is kept.
    ``forget`` is told of each entry removed."""
    for entry in sorted(await asyncio.to_thread(marked_entries, repository)):
        model, _, version = entry.rpartition(".v")
        if not model or not version.isdigit() or entry in table.referenced():
            continue
        if model in deployments and deployments[model].may_use(int(version)):
            continue
        try:
            deployment = await registry.get_deployment(model)
            if deployment is not None and deployment.may_use(int(version)):
                continue
            async with entry_lock(repository, entry):
                if entry in table.referenced() or (peers_busy is not None and await peers_busy(entry)):
                    continue
                if await triton.is_ready(entry, version):
                    await triton.unload(entry)
                    why = "is not deployed" if deployment is None or deployment.retired else \
                        f"r{deployment.revision} does not use v{version}"
                    log.info("unloaded %s: %s %s (left from before this gateway started)", entry, model, why)
                forget(entry)
                await asyncio.to_thread(shutil.rmtree, repository / entry, True)
        except LooplineError as exc:
            log.warning("could not remove %s, which no deployment uses: %s", entry, exc)


def marked_entries(repository: Path) -> list[str]:
    """The model folders of the repository that a gateway wrote (their config.pbtxt begins with ``MARK``)."""
    found = []
    for path in repository.iterdir() if repository.is_dir() else ():
        try:
            with (path / "config.pbtxt").open() as config:
                if config.readline() == MARK:
                    found.append(path.name)
        except (OSError, UnicodeDecodeError):  # not a model folder, or not ours
            continue
    return found
