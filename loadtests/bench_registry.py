"""Registry benchmark: alias resolution and version reads (requests/s, p50, p99) and
registration writes, over gRPC and REST on loopback, against baselines in the same
run: the same handler called in-process (no transport, no serialization), and the
transports' own health endpoints (what the service host costs before the registry
does anything). The registry runs in its own process; the client here.

Backends: the in-memory one, and PostgreSQL (a throwaway cluster started through the
local-stack API, fsync off). Choose with BENCH_REGISTRY_BACKENDS=memory,postgres.
Every phase is bounded by a request count and a time limit. Results go to stdout and
$BENCH_OUT/registry.json (default .run/bench/).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc
from loopline.registry.v1 import registry_pb2 as pb
from loopline.registry.v1 import registry_pb2_grpc

from loopline_registry.bootstrap import wire
from loopline_registry.domain.auth import Caller, Role
from loopline_registry.settings import RegistrySettings

READS, WRITES, CONCURRENCY, TIME_LIMIT_S = 3000, 300, 16, 20.0
KEY = "bench-operator-secret-0123456789"
META = (("authorization", f"Bearer {KEY}"),)
Row = dict[str, float | str]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _artifact() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in (("data.pkl", b"\x80\x02}."), ("constants.pkl", b"\x80\x02)."),
                           ("code/__torch__/m.py", b"def forward(self, x): return x\n")):
            archive.writestr(f"bench/{name}", data)
    return buffer.getvalue()


async def measure(case: str, call: Callable[[], Awaitable[object]], count: int) -> Row:
    """``count`` calls from CONCURRENCY workers, stopping at TIME_LIMIT_S."""
    latencies: list[float] = []
    deadline = time.perf_counter() + TIME_LIMIT_S
    todo = iter(range(count))

    async def worker() -> None:
        for _ in todo:
            if time.perf_counter() > deadline:
                return
            began = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    elapsed = time.perf_counter() - began
    cuts = statistics.quantiles(latencies, n=100)
    return {"case": case, "requests": len(latencies), "rps": round(len(latencies) / elapsed, 1),
            "p50_ms": round(cuts[49] * 1000, 3), "p99_ms": round(cuts[98] * 1000, 3)}


async def _seed(http: httpx.AsyncClient) -> str:
    data = _artifact()
    await http.post("/v1/models", json={"name": "bench"})
    reply = await http.post("/v1/artifacts", content=data, headers={
        "X-Artifact-Format": "torchscript", "X-Artifact-Sha256": hashlib.sha256(data).hexdigest()})
    sha256 = reply.json()["sha256"]
    await http.post("/v1/models/bench/versions", json={"artifact_sha256": sha256})
    await http.put("/v1/models/bench/aliases/champion", json={"version": 1})
    return sha256


def _spawn(settings: RegistrySettings, root: Path) -> subprocess.Popen[bytes]:
    """The registry in its own process, as deployed, so client and server do not share a core."""
    env = {**os.environ, "LOOPLINE_BACKEND": settings.backend, "LOOPLINE_POSTGRES_SCHEMA": settings.postgres_schema,
           "LOOPLINE_POSTGRES__DSN": settings.postgres.dsn, "LOOPLINE_POSTGRES__MAX_POOL_SIZE": "20",
           "LOOPLINE_HTTP_PORT": str(settings.http_port), "LOOPLINE_GRPC_PORT": str(settings.grpc_port),
           "LOOPLINE_RELAY__ENABLED": "false", "LOOPLINE_ARTIFACTS__ROOT": str(root / "artifacts"),
           "LOOPLINE_TELEMETRY__LOCAL_TRACE_DIR": str(root / "traces"), "LOOPLINE_LOG_LEVEL": "WARNING",
           "LOOPLINE_AUTH__KEYS": json.dumps({"bench": {"role": "operator", "secret": KEY}})}
    return subprocess.Popen([sys.executable, "-m", "loopline_registry"], env=env)


async def bench(backend: str, dsn: str, root: Path) -> list[Row]:
    settings = RegistrySettings(backend=backend, postgres={"dsn": dsn or "postgresql://unused"},
                                postgres_schema="registry_bench", http_port=_port(), grpc_port=_port(),
                                relay={"enabled": False}, auth={"keys": {"bench": {"role": "operator", "secret": KEY}}},
                                artifacts={"root": str(root / backend / "baseline")})
    if backend == "postgres":
        conn = await asyncpg.connect(dsn)
        await conn.execute("DROP SCHEMA IF EXISTS registry_bench CASCADE")
        await conn.close()
    server = _spawn(settings, root / backend)
    rows: list[Row] = []
    try:
        async with _client(settings) as http, grpc.aio.insecure_channel(f"127.0.0.1:{settings.grpc_port}") as channel:
            async with asyncio.timeout(60):
                while not await _ready(http):
                    assert server.poll() is None, "the registry exited during start-up"
                    await asyncio.sleep(0.05)
            sha256 = await _seed(http)
            stub = registry_pb2_grpc.RegistryServiceStub(channel)
            rows.append(await _baseline(settings))
            health = health_pb2_grpc.HealthStub(channel)
            rows.append(await measure("transport: gRPC Health/Check (baseline)",
                                      lambda: health.Check(health_pb2.HealthCheckRequest()), READS))
            async with _client(settings) as fresh:  # uvicorn drops keep-alive connections idle for 5 s
                rows.append(await measure("transport: REST GET /healthz (baseline)", lambda: fresh.get("/healthz"),
                                          READS))
            rows.append(await measure("alias: gRPC ResolveAlias", lambda: stub.ResolveAlias(
                pb.ResolveAliasRequest(model="bench", alias="champion"), metadata=META), READS))
            async with _client(settings) as fresh:
                rows.append(await measure("alias: REST GET", lambda: fresh.get("/v1/models/bench/aliases/champion"),
                                          READS))
            rows.append(await measure("version: gRPC GetModelVersion", lambda: stub.GetModelVersion(
                pb.GetModelVersionRequest(model="bench", version=1), metadata=META), READS))
            rows.append(await measure("register: gRPC RegisterModelVersion", lambda: stub.RegisterModelVersion(
                pb.RegisterModelVersionRequest(model="bench", artifact_sha256=sha256), metadata=META), WRITES))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    return [{"backend": backend, **row} for row in rows]


async def _baseline(settings: RegistrySettings) -> Row:
    """The same handler in this process, on the same data: what the transport costs is the difference.

    With the memory backend the server's data is not shared, so the baseline seeds its own copy."""
    registry = wire(settings)
    for component in registry.components:
        await component.start()
    h, caller = registry.handlers, Caller("bench", Role.OPERATOR)
    if settings.backend == "memory":
        from loopline_registry.service.commands import CreateModel, PromoteModelVersion, RegisterModelVersion, \
            UploadArtifact
        data = _artifact()

        async def chunks():  # type: ignore[no-untyped-def]
            yield data
        artifact = await h.upload_artifact(caller, UploadArtifact("torchscript", hashlib.sha256(data).hexdigest()),
                                           chunks())
        await h.create_model(caller, CreateModel("bench"))
        await h.register_version(caller, RegisterModelVersion("bench", artifact.sha256))
        await h.promote(caller, PromoteModelVersion("bench", 1, "champion"))
    try:
        return await measure("alias: handler in-process (baseline)",
                             lambda: h.resolve_alias(caller, "bench", "champion"), READS)
    finally:
        for component in reversed(registry.components):
            if component.stop:
                await component.stop()


def _client(settings: RegistrySettings) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.http_port}",
                             headers={"Authorization": f"Bearer {KEY}"})


async def _ready(http: httpx.AsyncClient) -> bool:
    try:
        return (await http.get("/readyz")).status_code == 200
    except httpx.TransportError:
        return False


def _postgres(run_dir: Path):  # type: ignore[no-untyped-def]
    from loopline_cli.stack import Stack, StackConfig

    stack = Stack(StackConfig.for_tests(run_dir))
    stack.ensure("postgres")
    return stack


def main() -> int:
    backends = os.environ.get("BENCH_REGISTRY_BACKENDS", "memory,postgres").split(",")
    out = Path(os.environ.get("BENCH_OUT", ".run/bench"))
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-registry-") as tmp:
        stack = _postgres(Path(tmp) / "stack") if "postgres" in backends else None
        try:
            for backend in backends:
                dsn = stack.config.postgres_dsn if stack and backend == "postgres" else ""
                rows += asyncio.run(bench(backend, dsn, Path(tmp)))
        finally:
            if stack:
                stack.down()
    header = f"{'backend':9} {'case':42} {'n':>6} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}"
    print(header)
    for r in rows:
        print(f"{r['backend']:9} {r['case']:42} {r['requests']:>6} {r['rps']:>9} {r['p50_ms']:>8} {r['p99_ms']:>8}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "registry.json").write_text(json.dumps({"concurrency": CONCURRENCY, "results": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
