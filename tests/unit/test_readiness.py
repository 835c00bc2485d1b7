from __future__ import annotations

import asyncio

from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, Counter

from loopline_core.errors import Unavailable
from loopline_core.servers.http import create_app
from loopline_core.servers.readiness import Readiness


async def test_not_ready_until_started_and_every_check_passes() -> None:
    readiness = Readiness(timeout_s=0.05)
    state = {"db": False}

    async def db() -> None:
        if not state["db"]:
            raise Unavailable("connection refused")

    async def slow() -> None:
        await asyncio.sleep(1)

    readiness.add("db", db)
    ok, report = await readiness.evaluate()
    assert not ok and report == {"db": "Unavailable: connection refused", "startup": "starting"}
    readiness.started, state["db"] = True, True
    assert await readiness.evaluate() == (True, {"db": "ok"})
    readiness.add("slow", slow)
    ok, report = await readiness.evaluate()
    assert not ok and report["slow"] == "timed out after 0.1s"


async def test_draining_is_not_ready() -> None:
    readiness = Readiness()
    readiness.started = readiness.draining = True
    assert await readiness.evaluate() == (False, {"shutdown": "draining"})


def test_http_probes_and_metrics() -> None:
    metrics = CollectorRegistry()
    Counter("loopline_things", "things seen", registry=metrics).inc(3)
    readiness = Readiness()
    client = TestClient(create_app("svc", readiness, metrics))
    assert client.get("/healthz").json() == {"status": "ok", "service": "svc"}
    assert client.get("/readyz").status_code == 503
    readiness.started = True
    assert client.get("/readyz").status_code == 200
    assert "loopline_things_total 3.0" in client.get("/metrics").text
