"""Running the gateway in one process, or in several that share its ports.

The worker processes share the V2 gRPC port and the HTTP port (REST, probes,
/metrics) through SO_REUSEPORT: the kernel spreads connections among them. A worker
started after the first listens for HTTP only once it is ready, as it binds gRPC
only then. Whichever worker answers /metrics answers with every worker's series
(``worker_peers``: each also answers the others on a Unix socket of its own, in a
directory private to this run); and a worker unloads a version only once no other
worker routes to it or has requests to it in flight.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import shutil
import sys
import tempfile
import time
from pathlib import Path

import uvloop

from loopline_core.heap import settle_heap
from loopline_core.logs import setup_logging
from loopline_core.servers.host import Component
from loopline_core.telemetry import setup_tracing

from loopline_serving_gateway.bootstrap import build
from loopline_serving_gateway.settings import GatewaySettings
from loopline_serving_gateway.worker_peers import Workers, WorkersMetrics


def serve(settings: GatewaySettings, workers: tuple[Path, int, int] | None = None) -> int:
    """Runs one gateway process; ``workers``: (the run's directory, this worker's number, how many)
    when it is one of several."""
    setup_logging(settings.service_name)
    setup_tracing(settings.service_name, settings.telemetry)
    if settings.uvloop:
        uvloop.install()
    gateway = build(settings)
    if workers is not None:
        directory, worker, count = workers
        host = gateway.host
        peers = Workers(directory, worker, count, gateway.metrics.registry, gateway.reconciler.busy)
        gateway.reconciler.peers_busy = peers.busy_elsewhere
        host.components.insert(0, Component("worker-peers", peers.start, peers.stop))
        edge = host.front  # the REST edge, ahead of FastAPI: /metrics is passed on, to the merge
        assert edge is not None
        host.front = lambda app: edge(WorkersMetrics(app, peers))
        host.http_reuse_port = True
        host.http_when_ready = worker > 0
    settle_heap()
    return asyncio.run(gateway.run())


def _worker(settings_json: str, directory: str, worker: int, count: int) -> None:
    sys.exit(serve(GatewaySettings.model_validate_json(settings_json), (Path(directory), worker, count)))


def serve_all(settings: GatewaySettings) -> int:
    if settings.workers == 1:
        return serve(settings)
    directory = Path(tempfile.mkdtemp(prefix="loopline-gateway-"))  # 0700: this user's processes only
    try:
        spawn = multiprocessing.get_context("spawn")
        each = settings.model_copy(update={"workers": 1}).model_dump_json()
        children = [spawn.Process(target=_worker, args=(each, str(directory), worker, settings.workers), daemon=True)
                    for worker in range(1, settings.workers)]
        for child in children:
            child.start()
        code = serve(settings, (directory, 0, settings.workers))
        # All at once, so that each drains and flushes its prediction log within the same grace period.
        for child in children:
            child.terminate()
        deadline = time.monotonic() + settings.shutdown_grace_s + 1.0
        for child in children:
            child.join(max(deadline - time.monotonic(), 0.0))
        return code
    finally:
        shutil.rmtree(directory, ignore_errors=True)
