"""CPU per request of each part of the benchmark's path over one phase (Linux /proc)."""

from __future__ import annotations

import time

from loadtests.cpu import cpu_seconds, machine_busy_s, stack_pids

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
