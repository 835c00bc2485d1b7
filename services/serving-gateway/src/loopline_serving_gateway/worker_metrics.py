"""/metrics of every worker process, served on the first one's HTTP port.

With ``WORKERS`` > 1 the HTTP port (REST, /metrics) stays with the first process;
the others have no port Prometheus knows. Without this, their requests, fallbacks
and dropped prediction-log events were counted where nobody could read them.

Each other worker answers scrapes over a pipe from the first (a daemon thread that
waits on the pipe and writes its registry's text exposition). When /metrics is read
on the first process, it asks every worker at once, waits up to ``SCRAPE_TIMEOUT_S``,
and answers with all their series, each labelled ``worker="<n>"`` (its own as
``worker="0"``). A worker that does not answer in time, or is gone, is left out of
that scrape with a warning; a late answer is recognised by its sequence number and
dropped. Nothing of this runs on a request's path.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from multiprocessing.connection import Connection
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

log = logging.getLogger(__name__)

SCRAPE_TIMEOUT_S = 2.0
_SEQ = struct.Struct("!Q")


def answer_scrapes(connection: Connection, registry: CollectorRegistry) -> threading.Thread:
    """In a worker other than the first: answer each scrape request with this registry's exposition."""
    def run() -> None:
        try:
            while True:
                asked = connection.recv_bytes()
                connection.send_bytes(asked[:_SEQ.size] + generate_latest(registry))
        except (EOFError, OSError):
            return  # the first process is gone: so is the reason to answer

    thread = threading.Thread(target=run, name="metrics-scrapes", daemon=True)
    thread.start()
    return thread


class WorkerScrapes:
    """The first process's side: asks every other worker for its exposition."""

    def __init__(self, workers: Sequence[tuple[int, Connection]], timeout_s: float = SCRAPE_TIMEOUT_S) -> None:
        self._workers = list(workers)
        self._timeout_s = timeout_s
        self._seq = 0
        self._lock = threading.Lock()  # one scrape at a time on the pipes

    def texts(self) -> list[tuple[int, str]]:
        """(worker, exposition) of each worker that answered in time (blocking: run it in a thread)."""
        with self._lock:
            self._seq += 1
            seq = _SEQ.pack(self._seq)
            asked = []
            for worker, connection in self._workers:
                try:
                    connection.send_bytes(seq)
                    asked.append((worker, connection))
                except OSError as exc:
                    log.warning("metrics: worker %d is gone (%s); its series are left out", worker, exc)
            deadline = time.monotonic() + self._timeout_s
            found = []
            for worker, connection in asked:
                text = self._answer(connection, seq, deadline)
                if text is None:
                    log.warning("metrics: worker %d did not answer within %.1f s; its series are left out "
                                "of this scrape", worker, self._timeout_s)
                else:
                    found.append((worker, text))
            return found

    @staticmethod
    def _answer(connection: Connection, seq: bytes, deadline: float) -> str | None:
        try:
            while connection.poll(max(deadline - time.monotonic(), 0.0)):
                answer = connection.recv_bytes()
                if answer[:_SEQ.size] == seq:
                    return answer[_SEQ.size:].decode()
                # an answer to an earlier scrape that came too late: dropped
        except (EOFError, OSError):
            pass
        return None


class _Families:
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> list[Metric]:
        return self._families


def _labelled(text: str, worker: int) -> Iterator[Metric]:
    for family in text_string_to_metric_families(text):
        copy = Metric(family.name, family.documentation, family.type, family.unit)
        copy.samples = [s._replace(labels={**s.labels, "worker": str(worker)}) for s in family.samples]
        yield copy


def merged(expositions: Iterable[tuple[int, str]]) -> bytes:
    """One exposition of several workers' ones: every sample labelled with its worker, one family per name."""
    families: dict[str, Metric] = {}
    for worker, text in expositions:
        for family in _labelled(text, worker):
            known = families.get(family.name)
            if known is None:
                families[family.name] = family
            elif known.type == family.type:
                known.samples.extend(family.samples)
    return generate_latest(_Families(list(families.values())))  # type: ignore[arg-type]


class WorkersMetrics:
    """ASGI: ``GET /metrics`` answered with every worker's series; anything else passed on to ``app``."""

    def __init__(self, app: Any, registry: CollectorRegistry, scrapes: WorkerScrapes) -> None:
        self._app = app
        self._registry = registry
        self._scrapes = scrapes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/metrics" or scope["method"] not in ("GET", "HEAD"):
            await self._app(scope, receive, send)
            return
        own = generate_latest(self._registry).decode()
        others = await asyncio.to_thread(self._scrapes.texts)
        body = merged([(0, own), *others])
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", CONTENT_TYPE_LATEST.encode()),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})
