"""Small helpers of the feedback benchmark: the collector as a subprocess on free ports."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx

#: What a server that lost the race for its port writes before exiting (errno 98, EADDRINUSE).
PORT_TAKEN = (b"address already in use", b"errno 98")


def free_port() -> int:
    """A port free now; another process may take it before ours binds it (see ``start_collector``)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class CollectorProcess:
    proc: subprocess.Popen[bytes]
    http_port: int
    grpc_port: int
    log: Path

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def start_collector(command: list[str], env: dict[str, str], log: Path, *, attempts: int = 5,
                          timeout: float = 60.0) -> CollectorProcess:
    """Start the collector on free HTTP and gRPC ports and wait until /readyz answers 200.

    ``free_port`` only finds a port that is free *now*: if another process binds it first,
    the collector exits with "address already in use"; then it is started again on new
    ports (up to ``attempts`` times). Any other early exit raises with the log's tail."""
    for attempt in range(1, attempts + 1):
        http_port, grpc_port = free_port(), free_port()
        run_env = {**env, "LOOPLINE_HTTP_PORT": str(http_port), "LOOPLINE_GRPC_PORT": str(grpc_port)}
        with log.open("ab") as out:
            offset = out.tell()
            proc = subprocess.Popen(command, env=run_env, stdout=out, stderr=subprocess.STDOUT)
        started = CollectorProcess(proc, http_port, grpc_port, log)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}") as client, \
                    asyncio.timeout(timeout):
                while proc.poll() is None:
                    try:
                        if (await client.get("/readyz")).status_code == 200:
                            return started
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.1)
        except BaseException:
            started.stop()
            raise
        tail = log.read_bytes()[offset:][-4000:]
        if attempt < attempts and any(marker in tail.lower() for marker in PORT_TAKEN):
            continue
        raise RuntimeError(f"the collector exited with {proc.returncode} before it was ready; see {log}:\n"
                           f"{tail.decode(errors='replace')}")
    raise AssertionError("unreachable")
