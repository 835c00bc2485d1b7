"""Gateway throughput at saturation: Triton directly against through W gateway workers.

What issue 4 asks of a many-core machine: the gateway scales across cores with worker
processes, and at saturation carries at least 0.9x the throughput of Triton called directly.
``make bench-gateway`` measures latency and CPU per request at a given concurrency with one
client process; this drives both paths as hard as the machine allows.

P client processes (``BENCH_SCALE_CLIENTS``), each with ``BENCH_SCALE_CONNECTIONS`` gRPC
connections of its own (local subchannel pools: each channel is its own TCP connection, which
the kernel gives to one of the workers sharing the port through SO_REUSEPORT), run a closed loop
at ``BENCH_SCALE_CONCURRENCY`` requests in flight in all, for ``BENCH_SCALE_SECONDS``, first
against Triton's gRPC port directly, then through the gateway, alternating for
``BENCH_SCALE_ROUNDS`` rounds, for each worker count in ``BENCH_SCALE_WORKERS``. Each worker is
the bench's gateway process (``loadtests.gateway.serve``: the real bootstrap, an in-memory
registry) on one shared gRPC port, every request traced, prediction log on (each phase waits
until Kafka acknowledged every event, so the gateway's CPU counts the logging). The workers of
``WORKERS`` > 1 in production also answer each other's /metrics and ``busy`` questions; nothing
of that is on a request's path.

Reported per worker count: req/s of each path and their ratio (medians over rounds), p50/p99,
the gateway's CPU per request (all its workers) and the CPU the machine had left idle during
the gateway phases (near 0: the machine, not the gateway, was the limit). Written to
$BENCH_OUT/gateway_scale.json (default .run/bench/).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import numpy as np
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from loadtests.cpu import cpu_seconds, machine_busy_s
from loadtests.gateway import processes
from loadtests.gateway.clients import closed_loop
from loadtests.gateway.processes import FEATURES, Gateway
from loadtests.gateway.serve import free_port

CORES = os.cpu_count() or 1
CLIENTS = int(os.environ.get("BENCH_SCALE_CLIENTS", str(max(1, CORES // 4))))
CONNECTIONS = int(os.environ.get("BENCH_SCALE_CONNECTIONS", "8"))
CONCURRENCY = int(os.environ.get("BENCH_SCALE_CONCURRENCY", str(max(16, 8 * CORES))))
SECONDS = float(os.environ.get("BENCH_SCALE_SECONDS", "8"))
ROUNDS = int(os.environ.get("BENCH_SCALE_ROUNDS", "2"))
WORKERS = [int(w) for w in os.environ.get("BENCH_SCALE_WORKERS", ",".join(
    str(w) for w in sorted({1, 2, max(1, CORES // 4), max(1, CORES // 2)}))).split(",")]


def _client(target: str, model: str, concurrency: int, connections: int, seconds: float, start: Any,
            results: Any) -> None:
    """One client process: ``concurrency`` loops over ``connections`` channels for ``seconds``."""
    async def run() -> dict[str, object]:
        batch = np.random.default_rng(os.getpid()).normal(size=(1, FEATURES)).astype(np.float32)
        request = pb.ModelInferRequest(model_name=model)
        request.inputs.add(name="features", datatype="FP32", shape=list(batch.shape))
        request.raw_input_contents.append(batch.tobytes())
        channels = [grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
                    for _ in range(connections)]
        stubs = [pb_grpc.GRPCInferenceServiceStub(c).ModelInfer for c in channels]
        for infer in stubs:  # connected and warm before the clock starts
            await infer(request, timeout=30.0)
        await asyncio.to_thread(start.wait)
        turn = itertools.count()

        async def call() -> None:  # the connections in turn
            await stubs[next(turn) % connections](request, timeout=10.0)

        result = await closed_loop(call, concurrency, 1 << 62, seconds)
        for channel in channels:
            await channel.close()
        return {"requests": result.requests, "errors": result.errors, "seconds": result.seconds,
                "latencies": result.latencies[::10]}

    results.put(asyncio.run(run()))


def _drive(target: str, model: str) -> dict[str, float]:
    """All client processes at once against ``target``: req/s, p50/p99 ms, errors, idle CPU left."""
    spawn = multiprocessing.get_context("spawn")
    start, results = spawn.Barrier(CLIENTS + 1), spawn.Queue()
    share = [CONCURRENCY // CLIENTS + (1 if i < CONCURRENCY % CLIENTS else 0) for i in range(CLIENTS)]
    clients = [spawn.Process(target=_client, args=(target, model, share[i], min(CONNECTIONS, share[i]), SECONDS,
                                                   start, results)) for i in range(CLIENTS)]
    for client in clients:
        client.start()
    start.wait(timeout=120)
    busy, wall = machine_busy_s(), time.monotonic()
    found = [results.get(timeout=SECONDS + 120) for _ in clients]
    idle_cores = max(0.0, CORES - (machine_busy_s() - busy) / (time.monotonic() - wall))
    for client in clients:
        client.join(30)
    latencies = sorted(v for f in found for v in f["latencies"])  # type: ignore[attr-defined]
    requests = sum(int(f["requests"]) for f in found)  # type: ignore[call-overload]
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {"rps": requests / max(float(f["seconds"]) for f in found),  # type: ignore[arg-type]
            "requests": requests, "errors": sum(int(f["errors"]) for f in found),  # type: ignore[call-overload]
            "p50_ms": statistics.median(latencies) * 1e3 if latencies else 0.0, "p99_ms": cuts[98] * 1e3,
            "idle_cores": idle_cores}


async def _acknowledged(gateways: list[Gateway]) -> float:
    """PredictionLogged events Kafka has acknowledged to all the workers."""
    async with aiohttp.ClientSession() as session:
        return sum([await processes.acknowledged(session, g.http) for g in gateways])


async def _until_acknowledged(gateways: list[Gateway], total: float) -> None:
    """Until Kafka acknowledged ``total`` events over all workers (60 s at most)."""
    deadline = time.monotonic() + 60
    while await _acknowledged(gateways) < total and time.monotonic() < deadline:
        await asyncio.sleep(0.1)


def _case(stack_cfg: object, gateways: list[Gateway], grpc_port: int) -> dict[str, object]:
    pids = [g.pid for g in gateways]
    direct: list[dict[str, float]] = []
    through: list[dict[str, float]] = []
    cpu_ms: list[float] = []
    logged = asyncio.run(_acknowledged(gateways))
    logged += _drive(f"127.0.0.1:{grpc_port}", "bench")["requests"]  # warm-up, the log's first batches
    for round_ in range(ROUNDS):
        for path in ("direct", "gateway") if round_ % 2 == 0 else ("gateway", "direct"):
            if path == "direct":
                direct.append(_drive(stack_cfg.triton_grpc_url, "bench.v1"))  # type: ignore[attr-defined]
                continue
            asyncio.run(_until_acknowledged(gateways, logged))
            before = sum(cpu_seconds(pids).values())
            figures = _drive(f"127.0.0.1:{grpc_port}", "bench")
            logged += figures["requests"]
            asyncio.run(_until_acknowledged(gateways, logged))  # the logging's CPU counted too
            cpu_ms.append((sum(cpu_seconds(pids).values()) - before) / max(figures["requests"], 1) * 1e3)
            through.append(figures)

    def med(runs: list[dict[str, float]], key: str) -> float:
        return round(statistics.median(r[key] for r in runs), 3)

    return {"workers": len(gateways), "direct_rps": med(direct, "rps"), "gateway_rps": med(through, "rps"),
            "throughput_ratio": round(med(through, "rps") / med(direct, "rps"), 3),
            "direct_p50_ms": med(direct, "p50_ms"), "gateway_p50_ms": med(through, "p50_ms"),
            "direct_p99_ms": med(direct, "p99_ms"), "gateway_p99_ms": med(through, "p99_ms"),
            "gateway_cpu_ms_per_request": round(statistics.median(cpu_ms), 4),
            "idle_cores_direct": med(direct, "idle_cores"), "idle_cores_gateway": med(through, "idle_cores"),
            "errors": int(sum(r["errors"] for r in direct + through)),
            "per_round": [{"direct_rps": round(d["rps"], 1), "gateway_rps": round(g["rps"], 1)}
                          for d, g in zip(direct, through)]}


def main() -> int:
    from loopline_cli.stack import Stack, StackConfig

    out = Path(os.environ.get("BENCH_OUT", ".run/bench"))
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as scratch:
        root = Path(scratch)
        stack = Stack(StackConfig.for_tests(root / "stack"))
        try:
            stack.ensure("kafka")
            stack.ensure("triton")
            processes.artifact(root / "model.pt")
            config = processes.config(stack.config, root)
            (_, env), *_ = processes.variants()
            for workers in WORKERS:
                grpc_port = free_port()
                started: list[subprocess.Popen[bytes]] = []
                gateways: list[Gateway] = []
                try:
                    for worker in range(workers):
                        process, gateway = processes.start(root, f"w{workers}-{worker}", config, env,
                                                           grpc_port=grpc_port)
                        started.append(process)
                        if gateway is None:
                            print(f"gateway worker {worker} of {workers} did not start", file=sys.stderr)
                            return 1
                        gateways.append(gateway)
                    rows.append(_case(stack.config, gateways, grpc_port))
                    print(json.dumps(rows[-1]), flush=True)
                finally:
                    for process in started:
                        process.terminate()
                    for process in started:
                        process.wait(30)
        finally:
            stack.down()
    out.mkdir(parents=True, exist_ok=True)
    report = {"benchmark": "gateway_scale", "cpu_count": CORES, "clients": CLIENTS, "connections": CONNECTIONS,
              "concurrency": CONCURRENCY, "seconds": SECONDS, "rounds": ROUNDS,
              "load_average_after": [round(v, 2) for v in os.getloadavg()], "cases": rows,
              "note": "Triton python backend on CPU; clients, gateway workers, Triton and Kafka share this machine"}
    (out / "gateway_scale.json").write_text(json.dumps(report, indent=2))
    print(f"wrote {out / 'gateway_scale.json'}")
    return 0 if all(r["errors"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
