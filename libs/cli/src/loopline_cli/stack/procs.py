"""Facts about processes read from /proc (Linux): identity, liveness, groups, memory.

A process is identified by (pid, start time in clock ticks since boot, boot id):
a pid recorded by an earlier ``up`` may since have been reused by something else,
and that something must never be signalled.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class ProcStat:
    pid: int
    state: str
    ppid: int
    pgrp: int
    start_ticks: int


def boot_id() -> str:
    return (PROC / "sys/kernel/random/boot_id").read_text().strip()


def stat(pid: int) -> ProcStat | None:
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = raw[raw.rindex(")") + 2 :].split()
    return ProcStat(pid=pid, state=fields[0], ppid=int(fields[1]), pgrp=int(fields[2]), start_ticks=int(fields[19]))


def is_alive(pid: int, start_ticks: int | None = None) -> bool:
    """Running (not a zombie) and, when ``start_ticks`` is given, the very same process."""
    info = stat(pid)
    if info is None or info.state in ("Z", "X"):
        return False
    return start_ticks is None or info.start_ticks == start_ticks


def _all() -> list[ProcStat]:
    found = (stat(int(entry.name)) for entry in PROC.iterdir() if entry.name.isdigit())
    return [info for info in found if info is not None and info.state not in ("Z", "X")]


def group_members(pgid: int) -> list[int]:
    return [info.pid for info in _all() if info.pgrp == pgid]


def tree(pid: int) -> list[int]:
    """``pid`` and its live descendants (PostgreSQL's children leave its process group)."""
    children: dict[int, list[int]] = {}
    for info in _all():
        children.setdefault(info.ppid, []).append(info.pid)
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += children.get(current, [])
    return found


def rss_mb(pid: int) -> float | None:
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return None


def tree_rss_mb(pid: int) -> float:
    """Sum over the process and its descendants (shared pages count once per process)."""
    return sum(rss_mb(member) or 0.0 for member in tree(pid))


def cmdline(pid: int) -> list[str]:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]
