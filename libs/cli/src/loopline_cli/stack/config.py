"""The stack's configuration: ports, run directory, cache, and the endpoints they imply.

Ports resolve, lowest precedence first: DESIGN defaults, the ports the run
directory was last brought up with (``stack.json``), ``LOOPLINE_STACK_<KEY>_PORT``,
then explicit flags. Remembering the last ports keeps ``up``, ``status`` and a
second ``up`` consistent with a stack started on non-default ports.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from loopline_cli.stack.errors import StackError
from loopline_cli.stack.layout import RunLayout, default_cache_dir
from loopline_cli.stack.ports import DEFAULT_PORTS, HOST, env_var, free_ports


@dataclass(frozen=True)
class StackConfig:
    run_dir: Path
    cache_dir: Path = field(default_factory=default_cache_dir)
    ports: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    #: PostgreSQL durability; off only for throwaway test clusters.
    fsync: bool = True
    #: The environment's bin/ (console scripts of the services, the Python that Triton's stub uses).
    venv_bin: Path = field(default_factory=lambda: Path(sys.executable).parent)

    @property
    def layout(self) -> RunLayout:
        return RunLayout(self.run_dir)

    def port(self, key: str) -> int:
        return self.ports[key]

    @property
    def kafka_bootstrap(self) -> str:
        return f"{HOST}:{self.port('kafka')}"

    @property
    def postgres_dsn(self) -> str:
        return f"postgresql://loopline@{HOST}:{self.port('postgres')}/loopline"

    @property
    def triton_http_url(self) -> str:
        return f"{HOST}:{self.port('triton-http')}"

    @property
    def triton_grpc_url(self) -> str:
        return f"{HOST}:{self.port('triton-grpc')}"

    @property
    def model_repository(self) -> Path:
        return self.layout.part_dir("triton") / "models"

    @classmethod
    def resolve(
        cls,
        run_dir: Path,
        flags: Mapping[str, int | None] | None = None,
        fsync: bool | None = None,
        env: Mapping[str, str] | None = None,
    ) -> StackConfig:
        env = os.environ if env is None else env
        layout = RunLayout(run_dir)
        saved = _read_saved(layout.config_file)
        ports = dict(DEFAULT_PORTS) | saved.get("ports", {})
        for key in DEFAULT_PORTS:
            if env.get(env_var(key)):
                ports[key] = _parse_port(env_var(key), env[env_var(key)])
            if flags and flags.get(key) is not None:
                ports[key] = int(flags[key])  # type: ignore[arg-type]
        chosen_fsync = fsync if fsync is not None else bool(saved.get("fsync", True))
        return cls(run_dir=layout.root, ports=ports, fsync=chosen_fsync)

    @classmethod
    def for_tests(cls, run_dir: Path) -> StackConfig:
        """Every port free at the time of the call, fsync off."""
        ports = dict(zip(DEFAULT_PORTS, free_ports(len(DEFAULT_PORTS)), strict=True))
        return cls(run_dir=Path(run_dir).absolute(), ports=ports, fsync=False)

    def with_ports(self, **ports: int) -> StackConfig:
        return replace(self, ports=dict(self.ports) | {k.replace("_", "-"): v for k, v in ports.items()})

    def save(self) -> None:
        self.layout.root.mkdir(parents=True, exist_ok=True)
        payload = {"ports": dict(self.ports), "fsync": self.fsync}
        self.layout.config_file.write_text(json.dumps(payload, indent=2) + "\n")


def _read_saved(path: Path) -> dict[str, Any]:
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    ports = {k: int(v) for k, v in saved.get("ports", {}).items() if k in DEFAULT_PORTS}
    return {"ports": ports, "fsync": saved.get("fsync", True)}


def _parse_port(name: str, raw: str) -> int:
    try:
        port = int(raw)
    except ValueError:
        raise StackError(f"{name}={raw!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise StackError(f"{name}={port} is outside 1-65535")
    return port
