"""/metrics with several workers: every worker's series on the first one's port, labelled by worker."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import threading
import time
from multiprocessing.connection import Connection

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from loopline_serving_gateway.worker_metrics import WorkerScrapes, WorkersMetrics, answer_scrapes, merged


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


def pipes(n: int) -> list[tuple[Connection, Connection]]:
    return [multiprocessing.Pipe() for _ in range(n)]


def test_the_other_workers_answer_over_their_pipes() -> None:
    pairs = pipes(2)
    for number, (_, theirs) in enumerate(pairs, 1):
        answer_scrapes(theirs, registry_with(10 * number, 0))
    scrapes = WorkerScrapes([(n, ours) for n, (ours, _) in enumerate(pairs, 1)], timeout_s=5.0)
    for _ in range(3):  # each scrape asks again, and gets this moment's values
        got = dict(scrapes.texts())
        assert sorted(got) == [1, 2]
        assert samples(got[2])[("gateway_requests_total", (("model", "iris"),))] == 20


def test_a_gone_or_silent_worker_is_left_out_and_a_late_answer_is_not_taken_for_a_new_one(
        caplog: pytest.LogCaptureFixture) -> None:
    (gone_ours, gone_theirs), (slow_ours, slow_theirs), (ok_ours, ok_theirs) = pipes(3)
    gone_theirs.close()
    answer_scrapes(ok_theirs, registry_with(1, 0))
    release = threading.Event()

    def slow() -> None:  # answers its first scrape only once released, then every later one at once
        registry = registry_with(7, 0)
        asked = slow_theirs.recv_bytes()
        release.wait(10)
        slow_theirs.send_bytes(asked[:8] + b"# stale\n")
        with contextlib.suppress(EOFError, OSError):
            while True:
                asked = slow_theirs.recv_bytes()
                slow_theirs.send_bytes(asked[:8] + generate_latest(registry))

    threading.Thread(target=slow, daemon=True).start()
    scrapes = WorkerScrapes([(1, gone_ours), (2, slow_ours), (3, ok_ours)], timeout_s=0.3)
    with caplog.at_level(logging.WARNING):
        started = time.monotonic()
        assert [n for n, _ in scrapes.texts()] == [3]
        assert time.monotonic() - started < 2.0
    assert "worker 2 did not answer within 0.3 s" in caplog.text
    release.set()
    time.sleep(0.1)  # the late answer to the first scrape is now in the pipe
    got = dict(scrapes.texts())
    assert sorted(got) == [2, 3]
    assert samples(got[2])[("gateway_requests_total", (("model", "iris"),))] == 7


async def test_get_metrics_is_answered_with_every_worker_and_the_rest_goes_on() -> None:
    ours, theirs = multiprocessing.Pipe()
    answer_scrapes(theirs, registry_with(4, 0))
    app = FastAPI()

    @app.get("/v2/health/live")
    async def live() -> dict[str, bool]:
        return {"live": True}

    edge = WorkersMetrics(app, registry_with(2, 0), WorkerScrapes([(1, ours)], timeout_s=5.0))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=edge), base_url="http://gateway") as client:
        answer = await client.get("/metrics")
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
        found = samples(answer.text)
        assert found[("gateway_requests_total", (("model", "iris"), ("worker", "0")))] == 2
        assert found[("gateway_requests_total", (("model", "iris"), ("worker", "1")))] == 4
        assert (await client.get("/v2/health/live")).json() == {"live": True}
        assert (await client.post("/metrics")).status_code == 404  # not a scrape: passed on to the app
