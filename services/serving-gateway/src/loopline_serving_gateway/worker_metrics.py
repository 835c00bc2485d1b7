"""/metrics of every worker process, whichever worker answers the scrape.

With ``WORKERS`` > 1 the gateway's processes share the HTTP port as they share the
gRPC one (SO_REUSEPORT), so a scrape of /metrics reaches one of them at random.
Each worker therefore also answers on a Unix socket of its own
(``<dir>/worker-<n>.sock``, in a directory private to the gateway's processes) with
its registry's text exposition; the worker that gets /metrics reads every other
worker's at once (waiting up to ``SCRAPE_TIMEOUT_S``) and answers with all their
series, each sample labelled ``worker="<n>"``. A worker that does not answer in
time (stuck or gone) is left out of that scrape with a warning; one still starting
(no socket yet) is left out quietly. Nothing of this runs on a request's path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

log = logging.getLogger(__name__)

SCRAPE_TIMEOUT_S = 2.0
_MAX_EXPOSITION = 64 << 20


def socket_path(directory: Path, worker: int) -> Path:
    return directory / f"worker-{worker}.sock"


class Workers:
    """This worker's number, how many there are, and where each answers scrapes."""

    def __init__(self, directory: Path, worker: int, count: int, registry: CollectorRegistry,
                 timeout_s: float = SCRAPE_TIMEOUT_S) -> None:
        self.directory = directory
        self.worker = worker
        self.count = count
        self._registry = registry
        self._timeout_s = timeout_s
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        """Answers scrapes of this worker on its socket."""
        path = socket_path(self.directory, self.worker)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # left by an earlier run of this worker

        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                writer.write(generate_latest(self._registry))
                await writer.drain()
            except ConnectionError:
                pass
            finally:
                writer.close()

        self._server = await asyncio.start_unix_server(answer, path=str(path))

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _read(self, worker: int) -> str | None:
        path = socket_path(self.directory, worker)
        try:
            async with asyncio.timeout(self._timeout_s):
                reader, writer = await asyncio.open_unix_connection(str(path))
                try:
                    return (await _read_all(reader)).decode()
                finally:
                    writer.close()
        except FileNotFoundError:
            log.debug("metrics: worker %d is not listening yet; its series are left out of this scrape", worker)
            return None
        except (OSError, TimeoutError) as exc:
            log.warning("metrics: worker %d did not answer (%s); its series are left out of this scrape",
                        worker, exc or type(exc).__name__)
            return None

    async def expositions(self) -> list[tuple[int, str]]:
        """(worker, exposition) of this worker and of every other that answered in time."""
        others = [w for w in range(self.count) if w != self.worker]
        texts = await asyncio.gather(*(self._read(w) for w in others))
        found = [(self.worker, generate_latest(self._registry).decode())]
        found += [(w, text) for w, text in zip(others, texts, strict=True) if text is not None]
        return sorted(found)


async def _read_all(reader: asyncio.StreamReader) -> bytes:
    parts, size = [], 0
    while chunk := await reader.read(1 << 16):
        parts.append(chunk)
        size += len(chunk)
        if size > _MAX_EXPOSITION:
            raise OSError(f"an exposition over {_MAX_EXPOSITION} bytes")
    return b"".join(parts)


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

    def __init__(self, app: Any, workers: Workers) -> None:
        self._app = app
        self._workers = workers

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/metrics" or scope["method"] not in ("GET", "HEAD"):
            await self._app(scope, receive, send)
            return
        body = merged(await self._workers.expositions())
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", CONTENT_TYPE_LATEST.encode()),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})
