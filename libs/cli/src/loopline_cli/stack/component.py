"""What every part of the stack (Kafka, PostgreSQL, Triton, a service) provides."""

from __future__ import annotations

from abc import ABC, abstractmethod

from loopline_cli.stack.config import StackConfig
from loopline_cli.stack.supervisor import Launch


class Component(ABC):
    #: Unique part name: state file, log file and CLI name.
    name: str
    #: "infra" parts start before "service" parts and stop after them.
    kind: str = "infra"
    #: Seconds from launch to ready before the start counts as failed.
    start_timeout: float = 60.0

    def __init__(self, config: StackConfig) -> None:
        self.config = config

    @property
    @abstractmethod
    def port_keys(self) -> tuple[str, ...]:
        """Keys into the port table of the ports this part binds."""

    def ports(self) -> dict[str, int]:
        return {key: self.config.port(key) for key in self.port_keys}

    @abstractmethod
    def check_prerequisites(self) -> None:
        """Raise PrerequisiteMissing naming the binary or package that is absent."""

    def prepare(self) -> None:
        """One-time, idempotent set-up before launch (downloads, initdb, copies)."""

    @abstractmethod
    def launch(self) -> Launch:
        """The process to run."""

    @abstractmethod
    def is_ready(self) -> bool:
        """One cheap readiness probe."""

    def after_ready(self) -> None:
        """Idempotent work that needs the running part (topics, databases)."""
