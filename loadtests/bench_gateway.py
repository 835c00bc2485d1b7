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
cases; BENCH_GATEWAY_ROUNDS (2) sets the rounds (every phase is bounded by a request
count and a time limit); BENCH_GATEWAY_TRACING=0 runs the gateway without the OTel
SDK; BENCH_GATEWAY_SAMPLE=0.01 samples that share of traces (parent-based ratio
sampler; default: every request); BENCH_GATEWAY_LOG=0 runs without the prediction
log; BENCH_GATEWAY_FLUSH_MS sets the log's flush interval; BENCH_GATEWAY_TRITON=grpc
sends inference to Triton over gRPC instead of HTTP/1.1; BENCH_GATEWAY_GRPC_SERVER=aio serves the
gateway's gRPC port with grpc.aio instead of the native HTTP/2 edge (the default).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import aiohttp
import numpy as np

from loadtests.cpu import cpu_seconds, machine_busy_s, stack_pids
from loadtests.gateway.clients import Result, closed_loop, grpc_caller, rest_caller
from loadtests.gateway.serve import free_port

CONCURRENCY = (1, 4, 16)
COUNTS = {1: 1500, 4: 3000, 16: 4000}
TIME_LIMIT_S, FEATURES, CLASSES = 6.0, 16, 4
ROUNDS = int(os.environ.get("BENCH_GATEWAY_ROUNDS", "2"))
PARTS = ("client", "gateway", "triton", "kafka", "other")


class Parts:
    """CPU per request of each part of the path during one phase: the client (this
    process), the gateway, Triton (server and python backend stubs), Kafka, and
    ``other`` (anything else the shared machine ran meanwhile)."""

    def __init__(self, gateway_pid: int, marker: str) -> None:
        self._gateway, self._marker = gateway_pid, marker

    def _sample(self) -> dict[str, float]:
        triton = sum(cpu_seconds(stack_pids(self._marker, b"tritonserver")).values())
        kafka = sum(cpu_seconds(stack_pids(self._marker, b"java")).values())
        return {"client": time.process_time(), "gateway": cpu_seconds([self._gateway]).get(self._gateway, 0.0),
                "triton": triton, "kafka": kafka, "machine": machine_busy_s()}

    def start(self) -> None:
        self._start = self._sample()

    def per_request_us(self, requests: int) -> dict[str, float]:
        end = self._sample()
        spent = {part: end[part] - self._start[part] for part in end}
        spent["other"] = max(0.0, spent.pop("machine") - sum(spent.values()))
        return {part: spent[part] / max(requests, 1) * 1e6 for part in PARTS}


def _artifact(path: Path) -> None:
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(FEATURES, 32), torch.nn.ReLU(), torch.nn.Linear(32, CLASSES),
                                torch.nn.Softmax(dim=1)).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        buffer = io.BytesIO()
        torch.jit.save(torch.jit.script(model), buffer)
    path.write_bytes(buffer.getvalue())


def _cpu_s(pid: int) -> float:
    return cpu_seconds([pid]).get(pid, 0.0)


async def _logged(session: aiohttp.ClientSession, base: str) -> float:
    async with session.get(f"{base}/metrics") as reply:
        for line in (await reply.text()).splitlines():
            if line.startswith("gateway_prediction_log_sent_total "):
                return float(line.split()[1])
    return 0.0


async def _drain(session: aiohttp.ClientSession, base: str, target: float) -> None:
    if os.environ.get("BENCH_GATEWAY_LOG", "1") == "0":
        return
    deadline = time.perf_counter() + 30
    while await _logged(session, base) < target and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)


async def _run(stack_cfg: object, gateway_pid: int, ports: dict[str, int], http_port: int,
               marker: str) -> list[dict[str, object]]:
    batch = np.random.default_rng(0).normal(size=(1, FEATURES)).astype(np.float32)
    gw_http = f"http://127.0.0.1:{http_port}"
    triton_http = f"http://{stack_cfg.triton_http_url}"  # type: ignore[attr-defined]
    rows: list[dict[str, object]] = []
    meter = Parts(gateway_pid, marker)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
        idle_before = _cpu_s(gateway_pid)
        await asyncio.sleep(3.0)
        idle = (_cpu_s(gateway_pid) - idle_before) / 3.0 * 1e3
        print(json.dumps({"gateway_idle_cpu_ms_per_s": round(idle, 2)}), flush=True)
        expected_logged = await _logged(session, gw_http)
        grpc_direct, ch1 = grpc_caller(stack_cfg.triton_grpc_url, "bench.v1", batch)  # type: ignore[attr-defined]
        grpc_gateway, ch2 = grpc_caller(f"127.0.0.1:{ports['grpc_port']}", "bench", batch)
        callers = {"grpc": (grpc_direct, grpc_gateway),
                   "rest": (rest_caller(session, triton_http, "bench.v1", batch),
                            rest_caller(session, gw_http, "bench", batch))}
        only = os.environ.get("BENCH_GATEWAY_PROTOCOLS", "grpc,rest").split(",")
        for protocol, (direct, gateway) in callers.items():
            if protocol not in only:
                continue
            await closed_loop(direct, 4, 200, 5)  # warm-up of both paths
            await closed_loop(gateway, 4, 200, 5)
            expected_logged += 200
            for concurrency in [int(c) for c in os.environ.get("BENCH_GATEWAY_CONCURRENCY", "1,4,16").split(",")]:
                results: dict[str, list[Result]] = {"direct": [], "gateway": []}
                cpu: list[float] = []
                parts: dict[str, list[dict[str, float]]] = {"direct": [], "gateway": []}
                for _ in range(ROUNDS):
                    meter.start()
                    results["direct"].append(await closed_loop(direct, concurrency, COUNTS[concurrency], TIME_LIMIT_S))
                    parts["direct"].append(meter.per_request_us(results["direct"][-1].requests))
                    await _drain(session, gw_http, expected_logged)
                    before = _cpu_s(gateway_pid)
                    meter.start()
                    result = await closed_loop(gateway, concurrency, COUNTS[concurrency], TIME_LIMIT_S)
                    expected_logged += result.requests
                    await _drain(session, gw_http, expected_logged)
                    parts["gateway"].append(meter.per_request_us(result.requests))
                    cpu.append((_cpu_s(gateway_pid) - before) / result.requests * 1e3)
                    results["gateway"].append(result)
                rows.append(_row(protocol, concurrency, results, cpu, parts))
                print(json.dumps(rows[-1]), flush=True)
        await ch1.close()
        await ch2.close()
    return rows


def _row(protocol: str, concurrency: int, results: dict[str, list[Result]], cpu: list[float],
         parts: dict[str, list[dict[str, float]]]) -> dict[str, object]:
    def med(path: str, attr: str) -> float:
        return round(statistics.median(getattr(r, attr) for r in results[path]), 3)

    direct_tp, gateway_tp = med("direct", "throughput"), med("gateway", "throughput")
    return {
        "protocol": protocol, "concurrency": concurrency, "rounds": ROUNDS,
        "direct_rps": direct_tp, "gateway_rps": gateway_tp, "throughput_ratio": round(gateway_tp / direct_tp, 3),
        "direct_p50_ms": med("direct", "p50_ms"), "gateway_p50_ms": med("gateway", "p50_ms"),
        "direct_p99_ms": med("direct", "p99_ms"), "gateway_p99_ms": med("gateway", "p99_ms"),
        "added_p50_ms": round(statistics.median(g.p50_ms - d.p50_ms for d, g in zip(results["direct"],
                                                                                    results["gateway"])), 3),
        "added_p99_ms": round(statistics.median(g.p99_ms - d.p99_ms for d, g in zip(results["direct"],
                                                                                    results["gateway"])), 3),
        "gateway_cpu_ms_per_request": round(statistics.median(cpu), 4),
        "errors": sum(r.errors for rs in results.values() for r in rs),
        # median CPU µs per request of each part, Triton directly and through the gateway
        # (the gateway phase's figures include the wait for Kafka's acknowledgements)
        "cpu_us_per_request": {path: {part: round(statistics.median(p[part] for p in parts[path]), 1)
                                      for part in PARTS} for path in parts},
    }


def main() -> int:
    from loopline_cli.stack import Stack, StackConfig

    out = Path(os.environ.get("BENCH_OUT", ".run/bench"))
    tracing = os.environ.get("BENCH_GATEWAY_TRACING", "1") != "0"
    sample = os.environ.get("BENCH_GATEWAY_SAMPLE", "")
    data_plane = os.environ.get("BENCH_GATEWAY_TRITON", "http")
    flush_ms = os.environ.get("BENCH_GATEWAY_FLUSH_MS", "100")
    grpc_server = os.environ.get("BENCH_GATEWAY_GRPC_SERVER", "native")
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as scratch:
        root = Path(scratch)
        stack = Stack(StackConfig.for_tests(root / "stack"))
        gateway: subprocess.Popen[bytes] | None = None
        try:
            stack.ensure("kafka")
            stack.ensure("triton")
            cfg = stack.config
            _artifact(root / "model.pt")
            http_port = free_port()
            config = {"artifact": str(root / "model.pt"), "features": FEATURES, "classes": CLASSES,
                      "tracing": tracing, "uvloop": os.environ.get("BENCH_GATEWAY_UVLOOP", "1") != "0",
                      "settings": {
                          "http_port": http_port, "grpc_port": free_port(), "run_dir": str(root / "gw"),
                          "grpc_server": grpc_server,
                          "triton": {"http_url": cfg.triton_http_url, "grpc_url": cfg.triton_grpc_url,
                                     "model_repository": str(cfg.model_repository)},
                          "kafka": {"bootstrap_servers": cfg.kafka_bootstrap},
                          "telemetry": {"local_trace_dir": str(root / "traces")},
                          "prediction_log": {"enabled": os.environ.get("BENCH_GATEWAY_LOG", "1") != "0",
                                             "flush_interval_ms": int(flush_ms)}}}
            if "BENCH_GATEWAY_TRITON" in os.environ:
                config["settings"]["triton_data_plane"] = data_plane  # type: ignore[index]
            config_path = root / "gateway.json"
            config_path.write_text(json.dumps(config))
            env = dict(os.environ)
            if sample:
                env.update(OTEL_TRACES_SAMPLER="parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG=sample)
            gateway = subprocess.Popen([sys.executable, "-m", "loadtests.gateway.serve", str(config_path)], env=env)
            ready = config_path.with_suffix(".ready")
            deadline = time.monotonic() + 180
            while not ready.exists():
                if gateway.poll() is not None or time.monotonic() > deadline:
                    print("the gateway did not start", file=sys.stderr)
                    return 1
                time.sleep(0.1)
            ports = json.loads(ready.read_text())
            rows = asyncio.run(_run(cfg, gateway.pid, ports, http_port, str(root)))
        finally:
            if gateway is not None:
                gateway.terminate()
                gateway.wait(30)
            stack.down()
    out.mkdir(parents=True, exist_ok=True)
    report = {"benchmark": "gateway", "tracing": tracing, "trace_sample": float(sample) if sample else 1.0,
              "triton_data_plane": data_plane, "grpc_server": grpc_server, "prediction_log": os.environ.get("BENCH_GATEWAY_LOG", "1") != "0",
              "cpu_count": os.cpu_count(), "load_average_after": [round(v, 2) for v in os.getloadavg()],
              "cases": rows,
              "note": "Triton python backend on CPU; client, gateway, Triton and Kafka share this machine"}
    (out / "gateway.json").write_text(json.dumps(report, indent=2))
    print(f"wrote {out / 'gateway.json'}")
    return 0 if all(r["errors"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
