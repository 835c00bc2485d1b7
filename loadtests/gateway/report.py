"""The benchmark's figures: a case's row (medians over rounds, CPU per part, each round as
measured), its comparison with the baseline, and the JSON report."""

from __future__ import annotations

import os
import statistics

from loadtests.gateway.clients import Result
from loadtests.gateway.meter import PARTS

COMPARED = ("gateway_rps", "gateway_p50_ms", "gateway_p99_ms", "added_p50_ms", "added_p99_ms",
            "gateway_cpu_ms_per_request")


def row(protocol: str, concurrency: int, rounds: int, results: dict[str, list[Result]], cpu: list[float],
        parts: dict[str, list[dict[str, float]]], name: str) -> dict[str, object]:
    """The case's figures for gateway ``name`` against Triton directly (``results`` per path)."""
    def med(path: str, attr: str) -> float:
        return round(statistics.median(getattr(r, attr) for r in results[path]), 3)

    direct_tp, gateway_tp = med("direct", "throughput"), med(name, "throughput")
    return {
        "protocol": protocol, "concurrency": concurrency, "rounds": rounds,
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


def compared(current: dict[str, object], baseline: dict[str, object]) -> None:
    """Adds the baseline's figures to ``current`` (a ``baseline`` block) and current/baseline ratios."""
    current["baseline"] = {key: baseline[key] for key in COMPARED + ("cpu_us_per_request", "per_round")}
    ratios = {}
    for key in ("gateway_rps", "gateway_p50_ms", "gateway_p99_ms", "gateway_cpu_ms_per_request"):
        now, then = float(current[key]), float(baseline[key])  # type: ignore[arg-type]
        ratios[key] = round(now / then, 3) if then else None
    current["current_over_baseline"] = ratios


def report(rows: list[dict[str, object]]) -> dict[str, object]:
    """The JSON report: the run's settings (from the bench's knobs), the machine, the cases."""
    sample = os.environ.get("BENCH_GATEWAY_SAMPLE", "")
    return {"benchmark": "gateway", "tracing": os.environ.get("BENCH_GATEWAY_TRACING", "1") != "0",
            "baseline": os.environ.get("BENCH_GATEWAY_BASELINE", ""),
            "baseline_env": os.environ.get("BENCH_GATEWAY_BASELINE_ENV", ""),
            "trace_sample": float(sample) if sample else 1.0,
            "triton_data_plane": os.environ.get("BENCH_GATEWAY_TRITON", "http"),
            "grpc_server": os.environ.get("BENCH_GATEWAY_GRPC_SERVER", "native"),
            "prediction_log": os.environ.get("BENCH_GATEWAY_LOG", "1") != "0",
            "features": int(os.environ.get("BENCH_GATEWAY_FEATURES", "16")),
            "cpu_count": os.cpu_count(), "load_average_after": [round(v, 2) for v in os.getloadavg()],
            "cases": rows,
            "note": "Triton python backend on CPU; client, gateway, Triton and Kafka share this machine"}
