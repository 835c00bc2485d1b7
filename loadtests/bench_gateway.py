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
cases; BENCH_GATEWAY_WARM_UP_S (5) the warm-up of each path (also warms the fresh Kafka
broker's JIT); BENCH_GATEWAY_ROUNDS (2) sets the rounds (every phase is bounded by a request
count and a time limit); BENCH_GATEWAY_TRACING=0 runs the gateway without the OTel
SDK; BENCH_GATEWAY_SAMPLE=0.01 samples that share of traces (parent-based ratio
sampler; default: every request); BENCH_GATEWAY_LOG=0 runs without the prediction
log; BENCH_GATEWAY_FLUSH_MS sets the log's flush interval; BENCH_GATEWAY_TRITON=grpc
sends inference to Triton over gRPC instead of HTTP/1.1; BENCH_GATEWAY_GRPC_SERVER=aio serves the
gateway's gRPC port with grpc.aio instead of the native HTTP/2 edge (the default).

Baseline in the same run: BENCH_GATEWAY_BASELINE=<dirs> (os.pathsep-separated) puts those
directories first on a second gateway's PYTHONPATH (e.g. <main worktree>/services/serving-gateway/src
and <main worktree>/libs/core/src); BENCH_GATEWAY_BASELINE_ENV="NAME=value,..." sets environment
variables of that gateway only (alone: the current code with those settings; BENCH_GATEWAY_TRACING
BENCH_GATEWAY_LOG and BENCH_GATEWAY_FLUSH_MS among them). Each round then
measures Triton directly, the baseline gateway and the current one (their order alternating by
round), on the same Triton and Kafka; each case gets a "baseline" block and current/baseline ratios.
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
from dataclasses import dataclass
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
WARM_UP_S = float(os.environ.get("BENCH_GATEWAY_WARM_UP_S", "5"))
PARTS = ("client", "gateway", "triton", "kafka", "other")


class Parts:
    """CPU per request of each part of the path during one phase: the client (this
    process), the gateway, Triton (server and python backend stubs), Kafka, and
    ``other`` (anything else the shared machine ran meanwhile)."""

    def __init__(self, marker: str) -> None:
        self._marker = marker
        self._gateway: int | None = None

    def _sample(self) -> dict[str, float]:
        triton = sum(cpu_seconds(stack_pids(self._marker, b"tritonserver")).values())
        kafka = sum(cpu_seconds(stack_pids(self._marker, b"java")).values())
        gateway = cpu_seconds([self._gateway]).get(self._gateway, 0.0) if self._gateway is not None else 0.0
        return {"client": time.process_time(), "gateway": gateway,
                "triton": triton, "kafka": kafka, "machine": machine_busy_s()}

    def start(self, gateway_pid: int | None) -> None:
        """Starts a phase; ``gateway_pid``: the gateway it goes through (None: Triton directly)."""
        self._gateway = gateway_pid
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


async def _drain(session: aiohttp.ClientSession, gateway: Gateway) -> None:
    if not gateway.logging:
        return
    deadline = time.perf_counter() + 30
    while await _logged(session, gateway.http) < gateway.logged and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)


@dataclass
class Gateway:
    """One gateway process of the run ("current", or "baseline" with other code or settings)."""

    name: str
    pid: int
    grpc_port: int
    http_port: int
    logging: bool = True  # prediction log on (BENCH_GATEWAY_LOG in its environment)
    logged: float = 0.0  # PredictionLogged events Kafka must have acknowledged

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"


async def _phase(session: aiohttp.ClientSession, gateway: Gateway, call: object, concurrency: int,
                 meter: Parts) -> tuple[Result, float, dict[str, float]]:
    """One measured phase through ``gateway``: the result, its CPU ms per request, CPU per part
    (the gateway's own figure is its part's, read over the same interval)."""
    await _drain(session, gateway)
    meter.start(gateway.pid)
    result = await closed_loop(call, concurrency, COUNTS[concurrency], TIME_LIMIT_S)  # type: ignore[arg-type]
    gateway.logged += result.requests
    await _drain(session, gateway)
    parts = meter.per_request_us(result.requests)
    return result, parts["gateway"] / 1e3, parts


async def _run(stack_cfg: object, gateways: list[Gateway], marker: str) -> list[dict[str, object]]:
    batch = np.random.default_rng(0).normal(size=(1, FEATURES)).astype(np.float32)
    triton_http = f"http://{stack_cfg.triton_http_url}"  # type: ignore[attr-defined]
    rows: list[dict[str, object]] = []
    meter = Parts(marker)
    channels = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
        for gateway in gateways:
            idle_before = _cpu_s(gateway.pid)
            await asyncio.sleep(3.0)
            idle = (_cpu_s(gateway.pid) - idle_before) / 3.0 * 1e3
            print(json.dumps({"gateway": gateway.name, "gateway_idle_cpu_ms_per_s": round(idle, 2)}), flush=True)
            gateway.logged = await _logged(session, gateway.http)
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
            # Warm-up of every path, WARM_UP_S each: the JIT of the fresh Kafka broker's produce path
            # and the first connections would otherwise land in the first gateway phases only.
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
                row = _row(protocol, concurrency, results, cpu["current"], parts, "current")
                if "baseline" in results:
                    base = _row(protocol, concurrency, results, cpu["baseline"], parts, "baseline")
                    row["baseline"] = {key: base[key] for key in _COMPARED + ("cpu_us_per_request", "per_round")}
                    row["current_over_baseline"] = {
                        key: round(float(row[key]) / float(base[key]), 3) if float(base[key]) else None  # type: ignore[arg-type]
                        for key in ("gateway_rps", "gateway_p50_ms", "gateway_p99_ms", "gateway_cpu_ms_per_request")}
                rows.append(row)
                print(json.dumps(rows[-1]), flush=True)
        for channel in channels:
            await channel.close()
    return rows


_COMPARED = ("gateway_rps", "gateway_p50_ms", "gateway_p99_ms", "added_p50_ms", "added_p99_ms",
             "gateway_cpu_ms_per_request")


def _row(protocol: str, concurrency: int, results: dict[str, list[Result]], cpu: list[float],
         parts: dict[str, list[dict[str, float]]], name: str) -> dict[str, object]:
    def med(path: str, attr: str) -> float:
        return round(statistics.median(getattr(r, attr) for r in results[path]), 3)

    direct_tp, gateway_tp = med("direct", "throughput"), med(name, "throughput")
    return {
        "protocol": protocol, "concurrency": concurrency, "rounds": ROUNDS,
        "direct_rps": direct_tp, "gateway_rps": gateway_tp, "throughput_ratio": round(gateway_tp / direct_tp, 3),
        "direct_p50_ms": med("direct", "p50_ms"), "gateway_p50_ms": med(name, "p50_ms"),
        "direct_p99_ms": med("direct", "p99_ms"), "gateway_p99_ms": med(name, "p99_ms"),
        "added_p50_ms": round(statistics.median(g.p50_ms - d.p50_ms for d, g in zip(results["direct"],
                                                                                    results[name])), 3),
        "added_p99_ms": round(statistics.median(g.p99_ms - d.p99_ms for d, g in zip(results["direct"],
                                                                                    results[name])), 3),
        "gateway_cpu_ms_per_request": round(statistics.median(cpu), 4),
        "errors": sum(r.errors for rs in results.values() for r in rs),
        # median CPU µs per request of each part, Triton directly and through the gateway
        # (the gateway phase's figures include the wait for Kafka's acknowledgements)
        "cpu_us_per_request": {path: {part: round(statistics.median(p[part] for p in parts[key]), 1)
                                      for part in PARTS} for path, key in (("direct", "direct"), ("gateway", name))},
        # each round as measured, to tell a round the shared machine disturbed (its "other" CPU)
        "per_round": [{"added_p50_ms": round(g.p50_ms - d.p50_ms, 3), "added_p99_ms": round(g.p99_ms - d.p99_ms, 3),
                       "gateway_cpu_ms": round(ms, 4), "other_us": round(part["other"], 1)}
                      for d, g, ms, part in zip(results["direct"], results[name], cpu, parts[name])],
    }


def _start_gateway(root: Path, name: str, config: dict[str, object],
                   env: dict[str, str]) -> tuple[subprocess.Popen[bytes], Gateway | None]:
    config = json.loads(json.dumps(config))
    http_port = free_port()
    config["settings"].update(http_port=http_port, grpc_port=free_port(),  # type: ignore[attr-defined]
                              run_dir=str(root / f"gw-{name}"))
    config_path = root / f"gateway-{name}.json"
    config_path.write_text(json.dumps(config))
    process = subprocess.Popen([sys.executable, "-m", "loadtests.gateway.serve", str(config_path)], env=env)
    ready = config_path.with_suffix(".ready")
    deadline = time.monotonic() + 180
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            return process, None
        time.sleep(0.1)
    return process, Gateway(name, process.pid, int(json.loads(ready.read_text())["grpc_port"]), http_port,
                            env.get("BENCH_GATEWAY_LOG", "1") != "0")


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
        processes: list[subprocess.Popen[bytes]] = []
        try:
            stack.ensure("kafka")
            stack.ensure("triton")
            cfg = stack.config
            _artifact(root / "model.pt")
            config = {"artifact": str(root / "model.pt"), "features": FEATURES, "classes": CLASSES,
                      "tracing": tracing, "uvloop": os.environ.get("BENCH_GATEWAY_UVLOOP", "1") != "0",
                      "settings": {
                          "run_dir": str(root / "gw"),
                          "grpc_server": grpc_server,
                          "triton": {"http_url": cfg.triton_http_url, "grpc_url": cfg.triton_grpc_url,
                                     "model_repository": str(cfg.model_repository)},
                          "kafka": {"bootstrap_servers": cfg.kafka_bootstrap},
                          "telemetry": {"local_trace_dir": str(root / "traces")},
                          "prediction_log": {"enabled": os.environ.get("BENCH_GATEWAY_LOG", "1") != "0",
                                             "flush_interval_ms": int(flush_ms)}}}
            if "BENCH_GATEWAY_TRITON" in os.environ:
                config["settings"]["triton_data_plane"] = data_plane  # type: ignore[index]
            env = dict(os.environ)
            if sample:
                env.update(OTEL_TRACES_SAMPLER="parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG=sample)
            variants = [("current", env)]
            baseline_path = os.environ.get("BENCH_GATEWAY_BASELINE", "")
            baseline_env = dict(item.split("=", 1) for item in
                                os.environ.get("BENCH_GATEWAY_BASELINE_ENV", "").split(",") if item)
            if baseline_path or baseline_env:
                extra = dict(env, **baseline_env)
                if baseline_path:
                    extra["PYTHONPATH"] = os.pathsep.join(p for p in (baseline_path, env.get("PYTHONPATH", "")) if p)
                variants.append(("baseline", extra))
            gateways = []
            for name, variant_env in variants:  # one after the other: both write the same model entry
                process, gateway = _start_gateway(root, name, config, variant_env)
                processes.append(process)
                if gateway is None:
                    print(f"the {name} gateway did not start", file=sys.stderr)
                    return 1
                gateways.append(gateway)
            rows = asyncio.run(_run(cfg, gateways, str(root)))
        finally:
            for process in processes:
                process.terminate()
                process.wait(30)
            stack.down()
    out.mkdir(parents=True, exist_ok=True)
    report = {"benchmark": "gateway", "tracing": tracing,
              "baseline": os.environ.get("BENCH_GATEWAY_BASELINE", ""),
              "baseline_env": os.environ.get("BENCH_GATEWAY_BASELINE_ENV", ""), "trace_sample": float(sample) if sample else 1.0,
              "triton_data_plane": data_plane, "grpc_server": grpc_server, "prediction_log": os.environ.get("BENCH_GATEWAY_LOG", "1") != "0",
              "cpu_count": os.cpu_count(), "load_average_after": [round(v, 2) for v in os.getloadavg()],
              "cases": rows,
              "note": "Triton python backend on CPU; client, gateway, Triton and Kafka share this machine"}
    (out / "gateway.json").write_text(json.dumps(report, indent=2))
    print(f"wrote {out / 'gateway.json'}")
    return 0 if all(r["errors"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
