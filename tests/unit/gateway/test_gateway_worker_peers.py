"""The workers asking each other: /metrics with every worker's series labelled by worker, and who is busy with a model."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from loopline_serving_gateway.worker_peers import Workers, WorkersMetrics, merged, socket_path


def registry_with(requests: float, buffered: float) -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("gateway_requests", "requests", ["model"], registry=registry).labels("iris").inc(requests)
    Gauge("gateway_log_buffered", "buffered", registry=registry).set(buffered)
    latency = Histogram("gateway_latency_seconds", "latency", ["model"], buckets=(0.01, 0.1), registry=registry)
    latency.labels("iris").observe(0.05)
    return registry


def samples(text: str | bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = text.decode() if isinstance(text, bytes) else text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_every_sample_is_labelled_with_its_worker_and_each_family_appears_once() -> None:
    texts = [(0, generate_latest(registry_with(3, 1)).decode()), (1, generate_latest(registry_with(5, 2)).decode())]
    body = merged(texts).decode()
    found = samples(body)
    assert found[("gateway_requests_total", (("model", "iris"), ("worker", "0")))] == 3
    assert found[("gateway_requests_total", (("model", "iris"), ("worker", "1")))] == 5
    assert found[("gateway_log_buffered", (("worker", "1"),))] == 2
    assert found[("gateway_latency_seconds_bucket", (("le", "0.1"), ("model", "iris"), ("worker", "0")))] == 1
    assert body.count("# TYPE gateway_requests_total counter") == 1
    assert body.count("# TYPE gateway_latency_seconds histogram") == 1
    assert all(dict(labels).get("worker") in ("0", "1") for _, labels in found)


async def test_whichever_worker_is_asked_reads_every_other_one(tmp_path: Path) -> None:
    first, second = (Workers(tmp_path, n, 2, registry_with(10 * (n + 1), 0)) for n in range(2))
    await first.start()
    await second.start()
    try:
        for asked in (first, second, first):  # each reading gets this moment's values
            got = dict(await asked.expositions())
            assert sorted(got) == [0, 1]
            assert samples(got[1])[("gateway_requests_total", (("model", "iris"),))] == 20
    finally:
        await first.stop()
        await second.stop()


async def test_a_gone_or_silent_worker_is_left_out(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    stuck_path = str(socket_path(tmp_path, 2))
    held: list[asyncio.StreamWriter] = []

    async def never_answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    stuck = await asyncio.start_unix_server(never_answers, path=stuck_path)
    asked = Workers(tmp_path, 0, 3, registry_with(1, 0), timeout_s=0.3)  # worker 1: no socket at all
    await asked.start()
    loop = asyncio.get_running_loop()
    try:
        with caplog.at_level(logging.WARNING):
            started = loop.time()
            assert [n for n, _ in await asked.expositions()] == [0]
            assert loop.time() - started < 2.0
        assert "worker 2 did not answer 'metrics'" in caplog.text  # stuck: a warning
        assert "worker 1" not in caplog.text  # not listening yet (starting): quietly left out
    finally:
        for writer in held:
            writer.close()
        stuck.close()
        await asked.stop()


async def test_get_metrics_is_answered_with_every_worker_and_the_rest_goes_on(tmp_path: Path) -> None:
    other = Workers(tmp_path, 1, 2, registry_with(4, 0))
    await other.start()
    app = FastAPI()

    @app.get("/v2/health/live")
    async def live() -> dict[str, bool]:
        return {"live": True}

    edge = WorkersMetrics(app, Workers(tmp_path, 0, 2, registry_with(2, 0)))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=edge), base_url="http://gateway") as client:
            answer = await client.get("/metrics")
            assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
            found = samples(answer.text)
            assert found[("gateway_requests_total", (("model", "iris"), ("worker", "0")))] == 2
            assert found[("gateway_requests_total", (("model", "iris"), ("worker", "1")))] == 4
            assert (await client.get("/v2/health/live")).json() == {"live": True}
            assert (await client.post("/metrics")).status_code == 404  # not a scrape: passed on to the app
    finally:
        await other.stop()


async def test_a_worker_tells_the_others_whether_it_is_busy_with_a_model(tmp_path: Path) -> None:
    busy = {"iris.v1"}
    first = Workers(tmp_path, 0, 3, registry_with(0, 0), busy=lambda name: False)
    second = Workers(tmp_path, 1, 3, registry_with(0, 0), busy=lambda name: name in busy)
    await first.start()
    await second.start()  # the third never starts: no answer, not busy
    try:
        assert await first.busy_elsewhere("iris.v1")
        assert not await first.busy_elsewhere("iris.v2")
        busy.clear()
        assert not await first.busy_elsewhere("iris.v1")
        assert not await second.busy_elsewhere("iris.v1")
    finally:
        await first.stop()
        await second.stop()
