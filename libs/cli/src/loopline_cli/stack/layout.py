"""Where things live: one run directory per stack, one cache outside the clone."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_RUN_DIR = Path(".run")


def default_cache_dir() -> Path:
    """Downloaded and unpacked runtimes (Kafka jars, Triton copy); LOOPLINE_CACHE_DIR overrides."""
    override = os.environ.get("LOOPLINE_CACHE_DIR")
    if override:
        return Path(override).expanduser().absolute()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "loopline"


@dataclass(frozen=True)
class RunLayout:
    """The run directory: state, logs and every part's data, nothing else."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root).absolute())

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def traces_dir(self) -> Path:
        return self.root / "traces"

    @property
    def config_file(self) -> Path:
        return self.root / "stack.json"

    def part_dir(self, name: str) -> Path:
        return self.root / name

    def log_file(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"

    def state_file(self, name: str) -> Path:
        return self.state_dir / f"{name}.json"

    def create(self) -> None:
        for directory in (self.state_dir, self.logs_dir, self.traces_dir):
            directory.mkdir(parents=True, exist_ok=True)


def resolve_run_dir(flag: Path | None) -> Path:
    """``--run-dir``, else LOOPLINE_RUN_DIR, else ``.run`` (relative to the working directory)."""
    chosen = flag or Path(os.environ.get("LOOPLINE_RUN_DIR") or DEFAULT_RUN_DIR)
    return chosen.expanduser().absolute()
