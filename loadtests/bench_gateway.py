"""Gateway benchmark: Triton directly against through the gateway, in one run.

The same client code, model (a TorchScript MLP on Triton's python backend) and
concurrency call Triton's own gRPC/REST ports and the gateway's (gRPC and REST,
concurrency 1, 4 and 16), alternating direct and gateway phases for ROUNDS rounds.
Reported per case: throughput of each path, the gateway's added p50/p99 latency
(median over rounds), and the gateway process's own CPU time per request, read
from /proc with prediction logging on (each phase waits until Kafka has
acknowledged every PredictionLogged, so the logging CPU is counted too).

Kafka and Triton are started through the local-stack API; the gateway runs in its
own process (loadtests/gateway/serve.py). Results go to stdout and
$BENCH_OUT/gateway.json (default .run/bench/). Knobs (environment):
BENCH_GATEWAY_PROTOCOLS (grpc,rest) and BENCH_GATEWAY_CONCURRENCY (1,4,16) narrow the
cases; BENCH_GATEWAY_KAFKA_WARM_UP_S (30) how long PredictionLogged batches are sent to the
fresh broker first (its JIT warms up only after many produce requests); BENCH_GATEWAY_WARM_UP_S
(5) the warm-up of each path; BENCH_GATEWAY_ROUNDS (2) sets the rounds (every phase is bounded by a request
count and a time limit); BENCH_GATEWAY_TRACING=0 runs the gateway without the OTel
SDK; BENCH_GATEWAY_SAMPLE=0.01 samples that share of traces (parent-based ratio
sampler; default: every request); BENCH_GATEWAY_LOG=0 runs without the prediction
log; BENCH_GATEWAY_FLUSH_MS sets the log's flush interval; BENCH_GATEWAY_TRITON=grpc
sends inference to Triton over gRPC instead of HTTP/1.1; BENCH_GATEWAY_FEATURES (16) sets the
model's input width (4 bytes each: request size); BENCH_GATEWAY_GRPC_SERVER=aio serves the
gateway's gRPC port with grpc.aio instead of the native HTTP/2 edge (the default).

Baseline in the same run: BENCH_GATEWAY_BASELINE=<dirs> (os.pathsep-separated) puts those
directories first on a second gateway's PYTHONPATH (e.g. <main worktree>/services/serving-gateway/src
and <main worktree>/libs/core/src); BENCH_GATEWAY_BASELINE_ENV="NAME=value,..." sets environment
variables of that gateway only (alone: the current code with those settings; BENCH_GATEWAY_TRACING,
BENCH_GATEWAY_SAMPLE, BENCH_GATEWAY_LOG and BENCH_GATEWAY_FLUSH_MS among them). Each round then
measures Triton directly, the baseline gateway and the current one (their order alternating by
round), on the same Triton and Kafka; each case gets a "baseline" block and current/baseline ratios.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import numpy as np

from loadtests.cpu import cpu_seconds
from loadtests.gateway import processes
from loadtests.gateway.clients import Result, closed_loop, grpc_caller, rest_caller
from loadtests.gateway.kafka_warm_up import warm_kafka
from loadtests.gateway.meter import Parts
from loadtests.gateway.processes import FEATURES, Gateway, drain
from loadtests.gateway.report import compared, report, row

CONCURRENCY = (1, 4, 16)
COUNTS = {1: 1500, 4: 3000, 16: 4000}
TIME_LIMIT_S = 6.0
ROUNDS = int(os.environ.get("BENCH_GATEWAY_ROUNDS", "2"))
WARM_UP_S = float(os.environ.get("BENCH_GATEWAY_WARM_UP_S", "5"))
KAFKA_WARM_UP_S = float(os.environ.get("BENCH_GATEWAY_KAFKA_WARM_UP_S", "30"))


def _cpu_s(pid: int) -> float:
    return cpu_seconds([pid]).get(pid, 0.0)


async def _phase(session: aiohttp.ClientSession, gateway: Gateway, call: object, concurrency: int,
                 meter: Parts) -> tuple[Result, float, dict[str, float]]:
    """One measured phase through ``gateway``: the result, its CPU ms per request, CPU per part
    (the gateway's own figure is its part's, read over the same interval)."""
    await drain(session, gateway)
    meter.start(gateway.pid)
    result = await closed_loop(call, concurrency, COUNTS[concurrency], TIME_LIMIT_S)  # type: ignore[arg-type]
    gateway.logged += result.requests
    await drain(session, gateway)
    parts = meter.per_request_us(result.requests)
    return result, parts["gateway"] / 1e3, parts


async def _run(stack_cfg: object, gateways: list[Gateway], marker: str) -> list[dict[str, object]]:
    batch = np.random.default_rng(0).normal(size=(1, FEATURES)).astype(np.float32)
    triton_http = f"http://{stack_cfg.triton_http_url}"  # type: ignore[attr-defined]
    rows: list[dict[str, object]] = []
    meter = Parts(marker)
    channels = []
    started = time.perf_counter()
    warmed = await warm_kafka(stack_cfg.kafka_bootstrap, KAFKA_WARM_UP_S)  # type: ignore[attr-defined]
    print(json.dumps({"kafka_warm_up_events": warmed, "seconds": round(time.perf_counter() - started, 1)}), flush=True)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
        for gateway in gateways:
            idle_before = _cpu_s(gateway.pid)
            await asyncio.sleep(3.0)
            idle = (_cpu_s(gateway.pid) - idle_before) / 3.0 * 1e3
            print(json.dumps({"gateway": gateway.name, "gateway_idle_cpu_ms_per_s": round(idle, 2)}), flush=True)
            gateway.logged = await processes.acknowledged(session, gateway.http)
        grpc_direct, channel = grpc_caller(stack_cfg.triton_grpc_url, "bench.v1", batch)  # type: ignore[attr-defined]
        channels.append(channel)
        callers: dict[str, dict[str, object]] = {"grpc": {"direct": grpc_direct},
                                                 "rest": {"direct": rest_caller(session, triton_http, "bench.v1",
                                                                                batch)}}
        for gateway in gateways:
            call, channel = grpc_caller(f"127.0.0.1:{gateway.grpc_port}", "bench", batch)
            channels.append(channel)
            callers["grpc"][gateway.name] = call
            callers["rest"][gateway.name] = rest_caller(session, gateway.http, "bench", batch)
        only = os.environ.get("BENCH_GATEWAY_PROTOCOLS", "grpc,rest").split(",")
        for protocol, calls in callers.items():
            if protocol not in only:
                continue
            # Warm-up of every path, WARM_UP_S each: the first connections, and what the Kafka warm-up
            # left of the broker's JIT, would otherwise land in the first gateway phases only.
            await closed_loop(calls["direct"], 4, 100_000, WARM_UP_S)  # type: ignore[arg-type]
            for gateway in gateways:
                warm = await closed_loop(calls[gateway.name], 4, 100_000, WARM_UP_S)  # type: ignore[arg-type]
                gateway.logged += warm.requests
            for concurrency in [int(c) for c in os.environ.get("BENCH_GATEWAY_CONCURRENCY", "1,4,16").split(",")]:
                results: dict[str, list[Result]] = {"direct": [], **{g.name: [] for g in gateways}}
                cpu: dict[str, list[float]] = {g.name: [] for g in gateways}
                parts: dict[str, list[dict[str, float]]] = {path: [] for path in results}
                for round_ in range(ROUNDS):
                    meter.start(None)
                    results["direct"].append(await closed_loop(calls["direct"], concurrency,  # type: ignore[arg-type]
                                                               COUNTS[concurrency], TIME_LIMIT_S))
                    parts["direct"].append(meter.per_request_us(results["direct"][-1].requests))
                    for gateway in (gateways if round_ % 2 == 0 else gateways[::-1]):
                        result, ms, part = await _phase(session, gateway, calls[gateway.name], concurrency, meter)
                        results[gateway.name].append(result)
                        cpu[gateway.name].append(ms)
                        parts[gateway.name].append(part)
                case = row(protocol, concurrency, ROUNDS, results, cpu["current"], parts, "current")
                if "baseline" in results:
                    compared(case, row(protocol, concurrency, ROUNDS, results, cpu["baseline"], parts, "baseline"))
                rows.append(case)
                print(json.dumps(rows[-1]), flush=True)
        for channel in channels:
            await channel.close()
    return rows


def main() -> int:
    from loopline_cli.stack import Stack, StackConfig

    out = Path(os.environ.get("BENCH_OUT", ".run/bench"))
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as scratch:
        root = Path(scratch)
        stack = Stack(StackConfig.for_tests(root / "stack"))
        started: list[subprocess.Popen[bytes]] = []
        try:
            stack.ensure("kafka")
            stack.ensure("triton")
            processes.artifact(root / "model.pt")
            config = processes.config(stack.config, root)
            gateways = []
            for name, env in processes.variants():  # one after the other: both write the same model entry
                process, gateway = processes.start(root, name, config, env)
                started.append(process)
                if gateway is None:
                    print(f"the {name} gateway did not start", file=sys.stderr)
                    return 1
                gateways.append(gateway)
            rows = asyncio.run(_run(stack.config, gateways, str(root)))
        finally:
            for process in started:
                process.terminate()
                process.wait(30)
            stack.down()
    out.mkdir(parents=True, exist_ok=True)
    (out / "gateway.json").write_text(json.dumps(report(rows), indent=2))
    print(f"wrote {out / 'gateway.json'}")
    return 0 if all(r["errors"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
