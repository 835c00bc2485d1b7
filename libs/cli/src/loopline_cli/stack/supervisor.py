"""Starting, finding and stopping the stack's processes, with state under the run directory.

Each part runs in its own session and process group, detached from the command
that started it, with its output appended to ``<run>/logs/<name>.log``. A JSON
record in ``<run>/state/<name>.json`` names the process exactly (pid, start
ticks, boot id, the command), so ``down`` signals only what ``up`` started.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from loopline_cli.stack import procs
from loopline_cli.stack.layout import RunLayout
from loopline_cli.stack.readiness import wait_until


@dataclass(frozen=True)
class Launch:
    """How to run one part."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    #: A string the running process's command line contains (it may exec into another program).
    match: str
    stop_signal: int = signal.SIGTERM
    stop_timeout: float = 15.0


@dataclass(frozen=True)
class ProcessRecord:
    name: str
    pid: int
    start_ticks: int
    boot_id: str
    argv: list[str]
    match: str
    ports: dict[str, int]
    log: str
    started_at: float
    stop_signal: int
    stop_timeout: float

    def is_alive(self) -> bool:
        """Still the very process that was started (not a reused pid)."""
        return (
            self.boot_id == procs.boot_id()
            and procs.is_alive(self.pid, self.start_ticks)
            and self.match in " ".join(procs.cmdline(self.pid))
        )


class Supervisor:
    def __init__(self, layout: RunLayout) -> None:
        self.layout = layout
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    def spawn(self, name: str, launch: Launch, ports: dict[str, int]) -> ProcessRecord:
        self.layout.create()
        log_path = self.layout.log_file(name)
        with log_path.open("ab") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} start {shlex.join(launch.argv)}\n".encode())
            log.flush()
            child = subprocess.Popen(
                launch.argv,
                cwd=launch.cwd,
                env=launch.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        info = procs.stat(child.pid)
        record = ProcessRecord(
            name=name,
            pid=child.pid,
            start_ticks=info.start_ticks if info else -1,
            boot_id=procs.boot_id(),
            argv=launch.argv,
            match=launch.match,
            ports=ports,
            log=str(log_path),
            started_at=time.time(),
            stop_signal=int(launch.stop_signal),
            stop_timeout=launch.stop_timeout,
        )
        self._children[name] = child
        self._write(record)
        return record

    def exit_code(self, name: str) -> int | None:
        """The exit status of a part this supervisor started and that has exited."""
        child = self._children.get(name)
        return None if child is None else child.poll()

    def record(self, name: str) -> ProcessRecord | None:
        try:
            return ProcessRecord(**json.loads(self.layout.state_file(name).read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def running(self, name: str) -> ProcessRecord | None:
        """The live record of ``name``; a stale record (process gone or replaced) is dropped."""
        record = self.record(name)
        if record is not None and not record.is_alive():
            self._forget(name)
            return None
        return record

    def names(self) -> list[str]:
        return sorted(path.stem for path in self.layout.state_dir.glob("*.json"))

    def stop(self, name: str) -> str:
        """Stop ``name``: 'stopped', 'killed', or 'not running' (nothing signalled)."""
        record = self.running(name)
        if record is None:
            return "not running"
        with contextlib.suppress(ProcessLookupError):
            os.killpg(record.pid, record.stop_signal)
        outcome = "stopped"
        if not self._wait_gone(record, record.stop_timeout):
            outcome = "killed"
            with contextlib.suppress(ProcessLookupError):
                os.killpg(record.pid, signal.SIGKILL)
            self._wait_gone(record, 10.0)
        # Children that outlived their leader keep the group alive: clear them too.
        if procs.group_members(record.pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(record.pid, signal.SIGKILL)
        self._forget(name)
        return outcome

    def _wait_gone(self, record: ProcessRecord, timeout: float) -> bool:
        def gone() -> bool:
            self.exit_code(record.name)  # reaps our own child so it does not linger as a zombie
            return not procs.is_alive(record.pid, record.start_ticks)

        return wait_until(gone, timeout, max_interval=0.2)

    def _write(self, record: ProcessRecord) -> None:
        path = self.layout.state_file(record.name)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(record), indent=2) + "\n")
        tmp.replace(path)

    def _forget(self, name: str) -> None:
        self.layout.state_file(name).unlink(missing_ok=True)
        child = self._children.pop(name, None)
        if child is not None:
            child.poll()
