"""Running the gateway in one process, or in several that share the gRPC port.

The worker processes share the V2 gRPC port through SO_REUSEPORT (the kernel
spreads connections). The HTTP port (REST, /metrics) stays with the first
process; the others listen for HTTP on a port of their own, because the shared
service host binds HTTP without SO_REUSEPORT. The first process's /metrics
carries every worker's series (``worker_metrics``: the others answer its scrapes
over a pipe).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import sys
import time
from multiprocessing.connection import Connection

import uvloop

from loopline_core.heap import settle_heap
from loopline_core.logs import setup_logging
from loopline_core.telemetry import setup_tracing

from loopline_serving_gateway.bootstrap import build
from loopline_serving_gateway.settings import GatewaySettings
from loopline_serving_gateway.worker_metrics import WorkerScrapes, WorkersMetrics, answer_scrapes


def serve(settings: GatewaySettings, *, scrapes: WorkerScrapes | None = None,
          answers: Connection | None = None) -> int:
    """Runs one gateway process. ``scrapes``: the first of several, whose /metrics gathers the
    others'; ``answers``: one of the others, answering those scrapes on this pipe."""
    setup_logging(settings.service_name)
    setup_tracing(settings.service_name, settings.telemetry)
    if settings.uvloop:
        uvloop.install()
    gateway = build(settings)
    registry = gateway.metrics.registry
    if scrapes is not None:
        edge = gateway.host.front  # the REST edge, ahead of FastAPI: /metrics is passed on, to the merge
        assert edge is not None
        gateway.host.front = lambda app: edge(WorkersMetrics(app, registry, scrapes))
    if answers is not None:
        answer_scrapes(answers, registry)
    settle_heap()
    return asyncio.run(gateway.run())


def _worker(settings_json: str, answers: Connection) -> None:
    sys.exit(serve(GatewaySettings.model_validate_json(settings_json), answers=answers))


def serve_all(settings: GatewaySettings) -> int:
    children = []
    pipes: list[tuple[int, Connection]] = []
    if settings.workers > 1:
        spawn = multiprocessing.get_context("spawn")
        extra = settings.model_copy(update={"http_port": 0, "workers": 1}).model_dump_json()
        for worker in range(1, settings.workers):
            ours, theirs = spawn.Pipe()
            children.append(spawn.Process(target=_worker, args=(extra, theirs), daemon=True))
            pipes.append((worker, ours))
        for child in children:
            child.start()
    code = serve(settings, scrapes=WorkerScrapes(pipes) if pipes else None)
    # All at once, so that each drains and flushes its prediction log within the same grace period.
    for child in children:
        child.terminate()
    deadline = time.monotonic() + settings.shutdown_grace_s + 1.0
    for child in children:
        child.join(max(deadline - time.monotonic(), 0.0))
    return code
