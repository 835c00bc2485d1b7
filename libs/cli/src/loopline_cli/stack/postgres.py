"""A PostgreSQL 15 cluster of the stack's own under ``<run>/postgres``, loopback only.

The cluster's superuser is the role ``loopline``, which owns the database ``loopline``;
loopback connections are trusted (local development and tests only).
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from loopline_cli.stack import unix_user
from loopline_cli.stack.component import Component
from loopline_cli.stack.config import StackConfig
from loopline_cli.stack.errors import PrerequisiteMissing, StackError
from loopline_cli.stack.ports import HOST
from loopline_cli.stack.supervisor import Launch

ROLE = DATABASE = "loopline"
_UNIX_SOCKET_MAX = 107  # sun_path limit, terminator excluded


def pg_bin_dir() -> Path:
    return Path(os.environ.get("LOOPLINE_PG_BIN", "/usr/lib/postgresql/15/bin"))


def server_settings(port: int, socket_dir: Path, fsync: bool) -> dict[str, str]:
    durable = "on" if fsync else "off"
    return {
        "listen_addresses": HOST,
        "port": str(port),
        "unix_socket_directories": str(socket_dir),
        "fsync": durable,
        "synchronous_commit": durable,
        "full_page_writes": durable,
        "shared_buffers": "64MB",
        "max_connections": "100",
        "logging_collector": "off",
    }


class Postgres(Component):
    name = "postgres"
    start_timeout = 60.0

    def __init__(self, config: StackConfig) -> None:
        super().__init__(config)
        self.home = config.layout.part_dir("postgres")
        self.data_dir = self.home / "data"
        self.socket_dir = self.home / "sockets"

    @property
    def port_keys(self) -> tuple[str, ...]:
        return ("postgres",)

    def _bin(self, program: str) -> str:
        return str(pg_bin_dir() / program)

    def check_prerequisites(self) -> None:
        for program in ("initdb", "postgres", "pg_isready", "psql", "createdb"):
            if not os.access(self._bin(program), os.X_OK):
                raise PrerequisiteMissing(
                    self.name, f"PostgreSQL 15 binary {self._bin(program)}", "apt-get install postgresql-15"
                )
        if unix_user.is_root():
            unix_user.check_tools(self.name)
        socket_path = self.socket_dir / f".s.PGSQL.{self.config.port('postgres')}"
        if len(str(socket_path)) > _UNIX_SOCKET_MAX:
            raise StackError(
                f"postgres: socket path {socket_path} is too long for a unix socket; use a shorter --run-dir"
            )

    def _as_owner(self) -> list[str]:
        return unix_user.run_as(unix_user.ensure_user()) if unix_user.is_root() else []

    def prepare(self) -> None:
        for directory in (self.home, self.socket_dir):
            directory.mkdir(parents=True, exist_ok=True)
            if unix_user.is_root():
                unix_user.hand_over(directory, unix_user.ensure_user())
        if (self.data_dir / "PG_VERSION").exists():
            return
        argv = [
            *self._as_owner(),
            self._bin("initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            ROLE,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ]
        with self.config.layout.log_file(self.name).open("ab") as log:
            done = subprocess.run(argv, cwd=self.home, stdout=log, stderr=subprocess.STDOUT, check=False)
        if done.returncode != 0:
            raise StackError(f"postgres: initdb of {self.data_dir} failed (see {log.name})")

    def launch(self) -> Launch:
        settings = server_settings(self.config.port("postgres"), self.socket_dir, self.config.fsync)
        options = [arg for key, value in settings.items() for arg in ("-c", f"{key}={value}")]
        argv = [*self._as_owner(), self._bin("postgres"), "-D", str(self.data_dir), *options]
        # SIGINT is PostgreSQL's "fast" shutdown: it does not wait for clients to disconnect.
        return Launch(
            argv=argv,
            env=dict(os.environ),
            cwd=self.home,
            match=str(self.data_dir),
            stop_signal=signal.SIGINT,
            stop_timeout=30.0,
        )

    def _client(self, program: str, *args: str) -> subprocess.CompletedProcess[str]:
        argv = [self._bin(program), "-h", HOST, "-p", str(self.config.port("postgres")), "-U", ROLE, *args]
        return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)

    def is_ready(self) -> bool:
        return self._client("pg_isready", "-q", "-t", "1", "-d", "postgres").returncode == 0

    def after_ready(self) -> None:
        query = f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"
        found = self._client("psql", "-d", "postgres", "-tAc", query)
        if found.returncode != 0:
            raise StackError(f"postgres: checking for database {DATABASE} failed: {found.stderr.strip()}")
        if found.stdout.strip() != "1":
            made = self._client("createdb", "-O", ROLE, DATABASE)
            if made.returncode != 0 and "already exists" not in made.stderr:
                raise StackError(f"postgres: createdb {DATABASE} failed: {made.stderr.strip()}")
