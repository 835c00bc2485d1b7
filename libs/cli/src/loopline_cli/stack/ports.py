"""The stack's port table (DESIGN §2 defaults), and probes for taken and free ports."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Mapping

HOST = "127.0.0.1"

#: Every port the stack binds, by key. A key is also the stem of its CLI flag
#: (``--kafka-port``) and of its environment variable (``LOOPLINE_STACK_KAFKA_PORT``).
DEFAULT_PORTS: Mapping[str, int] = {
    "kafka": 9092,
    "kafka-controller": 9093,
    "postgres": 5432,
    "triton-http": 8000,
    "triton-grpc": 8001,
    "triton-metrics": 8002,
    "serving-gateway-http": 8080,
    "serving-gateway-grpc": 9080,
    "registry-http": 8081,
    "registry-grpc": 9081,
    "feedback-collector-http": 8082,
    "feedback-collector-grpc": 9082,
    "drift-detector-http": 8083,
    "trainer-http": 8084,
    "trainer-grpc": 9084,
}


def env_var(key: str) -> str:
    return "LOOPLINE_STACK_" + key.upper().replace("-", "_") + "_PORT"


def port_in_use(port: int, host: str = HOST) -> bool:
    """True when something already listens on ``host:port`` (TIME_WAIT leftovers do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def accepts_connections(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def free_ports(count: int, host: str = HOST) -> list[int]:
    """``count`` distinct ports that were free a moment ago (held open together, then released)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((host, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
