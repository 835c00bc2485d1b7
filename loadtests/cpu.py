"""CPU accounting shared by the benchmarks: per process, per stack part, per machine (Linux /proc)."""

from __future__ import annotations

import os
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds of each process still alive."""
    found = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[pid] = (int(fields[11]) + int(fields[12])) / TICKS
    return found


def stack_pids(marker: str, program: bytes) -> list[int]:
    """The processes whose command line names ``marker`` (a bench's stack directory) and
    ``program`` (java: Kafka; postgres; tritonserver), with their children (PostgreSQL's
    backends, Triton's python backend stubs)."""
    roots, parents = set(), {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
            parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if marker.encode() in command and program in command:
            roots.add(int(entry.name))
    return sorted(roots | {pid for pid, parent in parents.items() if parent in roots})


def machine_busy_s() -> float:
    """CPU seconds the whole machine has spent busy (all cores)."""
    with open("/proc/stat") as stat:
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in stat.readline().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / TICKS
