"""Running the gateway in one process, or in several that share the gRPC port.

The worker processes share the V2 gRPC port through SO_REUSEPORT (the kernel
spreads connections). The HTTP port (REST, /metrics) stays with the first
process; the others listen for HTTP on a port of their own, because the shared
service host binds HTTP without SO_REUSEPORT.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import sys
import time

import uvloop

from loopline_core.heap import settle_heap
from loopline_core.logs import setup_logging
from loopline_core.telemetry import setup_tracing

from loopline_serving_gateway.bootstrap import build
from loopline_serving_gateway.settings import GatewaySettings


def serve(settings: GatewaySettings) -> int:
    setup_logging(settings.service_name)
    setup_tracing(settings.service_name, settings.telemetry)
    if settings.uvloop:
        uvloop.install()
    gateway = build(settings)
    settle_heap()
    return asyncio.run(gateway.run())


def _worker(settings_json: str) -> None:
    sys.exit(serve(GatewaySettings.model_validate_json(settings_json)))


def serve_all(settings: GatewaySettings) -> int:
    children = []
    if settings.workers > 1:
        spawn = multiprocessing.get_context("spawn")
        extra = settings.model_copy(update={"http_port": 0, "workers": 1}).model_dump_json()
        children = [spawn.Process(target=_worker, args=(extra,), daemon=True) for _ in range(settings.workers - 1)]
        for child in children:
            child.start()
    code = serve(settings)
    # All at once, so that each drains and flushes its prediction log within the same grace period.
    for child in children:
        child.terminate()
    deadline = time.monotonic() + settings.shutdown_grace_s + 1.0
    for child in children:
        child.join(max(deadline - time.monotonic(), 0.0))
    return code
