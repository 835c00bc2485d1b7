"""What the gateway's worker processes ask each other (``WORKERS`` > 1).

Each worker answers on a Unix socket of its own (``<dir>/worker-<n>.sock``, in a
directory private to the gateway's processes) one request line per connection:

* ``metrics``: its registry's text exposition. The processes share the HTTP port
  as they share the gRPC one (SO_REUSEPORT), so a scrape of /metrics reaches one of
  them at random; that one reads every other worker's exposition at once (waiting
  up to ``TIMEOUT_S``) and answers with all their series, each sample labelled
  ``worker="<n>"``.
* ``busy <triton model>``: ``1`` if its routes reference that Triton model or
  requests to it are in flight, else ``0``. A worker unloading a version it no
  longer routes to first waits until no other worker is busy with it: the workers
  apply a deployment change each on its own, not at the same instant.

A worker that does not answer in time (stuck or gone) is left out with a warning;
one still starting (no socket yet) quietly. Nothing of this runs on a request's path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

log = logging.getLogger(__name__)

TIMEOUT_S = 2.0


def socket_path(directory: Path, worker: int) -> Path:
    return directory / f"worker-{worker}.sock"


class Workers:
    """This worker's number, how many there are, and where each answers scrapes."""

    def __init__(self, directory: Path, worker: int, count: int, registry: CollectorRegistry,
                 busy: Callable[[str], bool] = lambda name: False, timeout_s: float = TIMEOUT_S) -> None:
        self.directory = directory
        self.worker = worker
        self.count = count
        self._registry = registry
        self._busy = busy
        self._timeout_s = timeout_s
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        """Answers scrapes of this worker on its socket."""
        path = socket_path(self.directory, self.worker)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # left by an earlier run of this worker

        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                async with asyncio.timeout(self._timeout_s):
                    asked = (await reader.readline()).decode("utf-8", "replace").strip()
                if asked == "metrics":
                    writer.write(generate_latest(self._registry))
                elif asked.startswith("busy "):
                    writer.write(b"1" if self._busy(asked[5:]) else b"0")
                await writer.drain()
            except (ConnectionError, TimeoutError, ValueError):
                pass
            finally:
                writer.close()

        self._server = await asyncio.start_unix_server(answer, path=str(path))

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _ask(self, worker: int, request: str) -> str | None:
        path = socket_path(self.directory, worker)
        try:
            async with asyncio.timeout(self._timeout_s):
                reader, writer = await asyncio.open_unix_connection(str(path))
                try:
                    writer.write(request.encode() + b"\n")
                    return (await reader.read()).decode()  # to the end: the worker closes after answering
                finally:
                    writer.close()
        except FileNotFoundError:
            log.debug("worker %d is not listening yet (%s): left out", worker, request)
            return None
        except (OSError, TimeoutError) as exc:
            log.warning("worker %d did not answer %r (%s); left out", worker, request, exc or type(exc).__name__)
            return None

    async def expositions(self) -> list[tuple[int, str]]:
        """(worker, exposition) of this worker and of every other that answered in time."""
        others = [w for w in range(self.count) if w != self.worker]
        texts = await asyncio.gather(*(self._ask(w, "metrics") for w in others))
        found = [(self.worker, generate_latest(self._registry).decode())]
        found += [(w, text) for w, text in zip(others, texts, strict=True) if text is not None]
        return sorted(found)

    async def busy_elsewhere(self, name: str) -> bool:
        """Whether another worker routes to Triton model ``name`` or has requests to it in flight."""
        others = [w for w in range(self.count) if w != self.worker]
        answers = await asyncio.gather(*(self._ask(w, f"busy {name}") for w in others))
        return "1" in answers


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
