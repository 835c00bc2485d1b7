"""The gateway process of the benchmark: the real bootstrap with an in-memory registry
that holds one TorchScript model. Usage: python -m loadtests.gateway.serve <config.json>.

The config names Triton, Kafka, the ports, the model repository and the artifact;
the process writes ``<config>.ready`` once it serves.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import sys
from pathlib import Path

from loopline_core.heap import settle_heap
from loopline_core.logs import setup_logging
from loopline_core.telemetry import setup_tracing

from loopline_serving_gateway.adapters.registry import InMemoryRegistry, TensorSpec, VersionInfo
from loopline_serving_gateway.bootstrap import build
from loopline_serving_gateway.domain.deployments import Deployment, Split
from loopline_serving_gateway.domain.routing import Variant
from loopline_serving_gateway.settings import GatewaySettings


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _environment_overrides(config: dict[str, object]) -> dict[str, bool]:
    """BENCH_GATEWAY_TRACING / _LOG / _FLUSH_MS in this process's environment win over the
    config, so a same-run baseline (BENCH_GATEWAY_BASELINE_ENV) can differ in them alone."""
    overrides: dict[str, bool] = {}
    if "BENCH_GATEWAY_TRACING" in os.environ:
        overrides["tracing"] = os.environ["BENCH_GATEWAY_TRACING"] != "0"
    settings = config["settings"]
    assert isinstance(settings, dict)
    log_settings = settings.setdefault("prediction_log", {})
    if "BENCH_GATEWAY_LOG" in os.environ:
        log_settings["enabled"] = os.environ["BENCH_GATEWAY_LOG"] != "0"
    if "BENCH_GATEWAY_FLUSH_MS" in os.environ:
        log_settings["flush_interval_ms"] = int(os.environ["BENCH_GATEWAY_FLUSH_MS"])
    return overrides


async def serve(config: dict[str, object], ready: Path) -> int:
    artifact = Path(str(config["artifact"])).read_bytes()
    features, classes = int(config["features"]), int(config["classes"])  # type: ignore[call-overload]
    registry = InMemoryRegistry()
    registry.add_version(VersionInfo(
        "bench", 1, hashlib.sha256(artifact).hexdigest(),
        (TensorSpec("features", "FP32", (-1, features)),), (TensorSpec("probabilities", "FP32", (-1, classes)),),
    ), artifact)
    registry.deployments["bench"] = Deployment("bench", 1, (Split(1, 1.0, Variant.CHAMPION),))
    overrides = _environment_overrides(config)
    settings = GatewaySettings(**config["settings"])  # type: ignore[arg-type]
    setup_logging(settings.service_name)
    if overrides.get("tracing", config.get("tracing")):
        setup_tracing(settings.service_name, settings.telemetry)
    gateway = build(settings, registry=registry, consume_events=False)
    if os.environ.get("BENCH_GATEWAY_SETTLE", "1") != "0":
        settle_heap()  # as the gateway's own entrypoint does (workers.serve)
    task = asyncio.create_task(gateway.run())
    while not gateway.host.readiness.started:
        if task.done():
            return await task
        await asyncio.sleep(0.05)
    ready.write_text(json.dumps({"grpc_port": gateway.grpc_server.port}))
    return await task


def main() -> None:
    path = Path(sys.argv[1])
    config = json.loads(path.read_text())
    profile = os.environ.get("BENCH_GATEWAY_PROFILE")
    if config.get("uvloop"):
        import uvloop

        uvloop.install()
    if not profile:
        sys.exit(asyncio.run(serve(config, path.with_suffix(".ready"))))
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        asyncio.run(serve(config, path.with_suffix(".ready")))
    finally:
        profiler.disable()
        profiler.dump_stats(profile)


if __name__ == "__main__":
    main()
