"""The service host: servers first, dependencies waited for, graceful stop in reverse."""

from __future__ import annotations

import asyncio
import socket

import grpc
import httpx
from fastapi import APIRouter
from grpc_health.v1 import health_pb2, health_pb2_grpc

from loopline_core.errors import Unavailable
from loopline_core.servers.assemble import assemble
from loopline_core.servers.host import Background, Component
from loopline_core.settings import ServiceSettings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _wait_for(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_waits_for_a_late_dependency_then_stops_in_reverse_order() -> None:
    events: list[str] = []
    db_up = asyncio.Event()

    async def db_start() -> None:
        if not db_up.is_set():
            raise Unavailable("db down")
        events.append("db started")

    async def db_stop() -> None:
        events.append("db stopped")

    async def cache_stop() -> None:
        events.append("cache stopped")

    async def cache_start() -> None:
        events.append("cache started")

    async def consumer() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            events.append("consumer stopped")

    settings = ServiceSettings(service_name="svc", http_port=_free_port(), grpc_port=_free_port())
    host = assemble(
        settings,
        components=[Component("db", db_start, db_stop), Component("cache", cache_start, cache_stop)],
        background=[Background("consumer", consumer)],
    )
    run = asyncio.create_task(host.run())
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.http_port}") as http:
        async def http_up() -> bool:
            try:
                return (await http.get("/healthz")).status_code == 200
            except httpx.TransportError:
                return False

        await _wait_for(http_up)
        assert (await http.get("/readyz")).status_code == 503
        db_up.set()

        async def ready() -> bool:
            return (await http.get("/readyz")).status_code == 200

        await _wait_for(ready)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{settings.grpc_port}") as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
    host.request_stop()
    assert await asyncio.wait_for(run, 15) == 0
    assert events == ["db started", "cache started", "consumer stopped", "cache stopped", "db stopped"]


async def test_crashed_background_loop_exits_non_zero() -> None:
    async def broken() -> None:
        raise RuntimeError("boom")

    settings = ServiceSettings(service_name="svc", http_port=_free_port())
    host = assemble(settings, background=[Background("broken", broken)])
    assert await asyncio.wait_for(host.run(), 15) == 1


def _http_host(port: int, name: str, dependency: asyncio.Event | None = None, *,  # type: ignore[no-untyped-def]
               when_ready: bool = False):
    async def start() -> None:
        if dependency is not None and not dependency.is_set():
            raise Unavailable("not yet")

    who = APIRouter()
    who.add_api_route("/who", lambda: {"name": name})
    settings = ServiceSettings(service_name="svc", http_port=port, grpc_port=0)
    host = assemble(settings, components=[Component("dependency", start)], routers=[who])
    host.grpc = None
    host.retry_max_s = 0.05
    host.http_reuse_port = True
    host.http_when_ready = when_ready
    return host


async def test_processes_share_the_http_port_and_a_late_one_listens_only_once_ready() -> None:
    port = _free_port()
    first = _http_host(port, "first")
    dependency = asyncio.Event()
    second = _http_host(port, "second", dependency, when_ready=True)
    runs = [asyncio.create_task(first.run())]
    served: set[str] = set()

    async def answers() -> bool:
        async with httpx.AsyncClient() as http:  # a new connection each time: the kernel picks a listener
            try:
                return (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
            except httpx.TransportError:
                return False

    await _wait_for(answers)
    runs.append(asyncio.create_task(second.run()))
    await asyncio.sleep(0.3)
    assert not second.readiness.started
    for _ in range(20):  # the second has bound nothing yet: every connection is the first's
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"http://127.0.0.1:{port}/who", timeout=5)).json() == {"name": "first"}
    dependency.set()

    async def both_answer() -> bool:
        async with httpx.AsyncClient() as http:
            answer = await http.get(f"http://127.0.0.1:{port}/who", timeout=5)
        served.add(answer.json()["name"])
        return served == {"first", "second"}
    await _wait_for(both_answer)
    for host in (first, second):
        host.request_stop()
    assert await asyncio.gather(*runs) == [0, 0]


async def test_a_host_stopped_before_it_was_ready_never_listens() -> None:
    port = _free_port()
    host = _http_host(port, "late", asyncio.Event(), when_ready=True)
    run = asyncio.create_task(host.run())
    await asyncio.sleep(0.2)
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0
    host.request_stop()
    assert await asyncio.wait_for(run, 10) == 0
