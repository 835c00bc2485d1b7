"""What the feedback benchmark reads of a run: the collectors' metrics and the CPU of each part."""

from __future__ import annotations

import time

import httpx

from loadtests.cpu import cpu_seconds, machine_busy_s, stack_pids


async def collector_metrics(http_ports: list[int], prefix: str) -> dict[str, float]:
    """The collectors' Prometheus samples named ``prefix``..., summed over the replicas."""
    found: dict[str, float] = {}
    async with httpx.AsyncClient() as client:
        for port in http_ports:
            text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
            for line in text.splitlines():
                if line.startswith(prefix) and "_bucket" not in line and "_created" not in line:
                    name, value = line.split()[0], float(line.split()[-1])
                    found[name] = found.get(name, 0.0) + value
    return found


def phase_means(metrics: dict[str, float]) -> dict[str, float]:
    """Mean milliseconds per batch in each phase of the collector's join (when it reports them)."""
    means = {}
    for phase in ("acquire", "store", "join", "emit", "commit"):
        count = metrics.get(f'feedback_batch_phase_seconds_count{{phase="{phase}"}}')
        if count:
            means[f"{phase}_ms"] = round(1000 * metrics[f'feedback_batch_phase_seconds_sum{{phase="{phase}"}}'] / count, 1)
    return means


class CpuMeter:
    """CPU spent during the label phase by the collector, Kafka, PostgreSQL,
    this bench (producer + consumer), and the whole machine; ``other_work_cores``: what
    the machine spent on anything else (other people's work on a shared machine)."""

    def __init__(self, collectors: list[int], stack_marker: str) -> None:
        self._collectors, self._marker = collectors, stack_marker

    def _sample(self) -> dict[str, object]:
        return {"collector": cpu_seconds(self._collectors),
                "kafka": cpu_seconds(stack_pids(self._marker, b"java")),
                "postgres": cpu_seconds(stack_pids(self._marker, b"postgres")),
                "bench": time.process_time(), "machine": machine_busy_s(), "wall": time.perf_counter()}

    def start(self) -> None:
        self._start = self._sample()

    def per_join(self, n: int) -> dict[str, float]:
        end, start = self._sample(), self._start

        def spent(kind: str) -> float:
            before: dict[int, float] = start[kind]  # type: ignore[assignment]
            return sum(v - before.get(pid, 0.0) for pid, v in end[kind].items())  # type: ignore[union-attr]

        def delta(kind: str) -> float:
            return float(end[kind]) - float(start[kind])  # type: ignore[arg-type]

        wall, machine, bench = delta("wall"), delta("machine"), delta("bench")
        ours = spent("collector") + spent("kafka") + spent("postgres") + bench
        return {"other_work_cores": round(max(0.0, machine - ours) / wall, 2),
                "collector_cpu_us_per_join": round(spent("collector") / n * 1e6, 1),
                "kafka_cpu_us_per_join": round(spent("kafka") / n * 1e6, 1),
                "postgres_cpu_us_per_join": round(spent("postgres") / n * 1e6, 1),
                "bench_cpu_us_per_join": round(bench / n * 1e6, 1),
                "machine_busy_cores": round(machine / wall, 2)}
