"""Runs one service process: HTTP and gRPC servers, dependencies, background loops,
and a graceful shutdown on SIGTERM or SIGINT.

Start order: servers first (so /healthz answers at once), then each component is
connected with backoff until it succeeds (a dependency that comes up later is
waited for, and /readyz says which one is missing), then background loops start.
Stop order is the reverse, after readiness has gone false so that load balancers
drain the instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI
from opentelemetry import trace

from loopline_core.servers.grpc import GrpcServer
from loopline_core.servers.readiness import Check, Readiness

log = logging.getLogger(__name__)


@dataclass
class Component:
    """Something the service connects to at start and closes at stop."""

    name: str
    start: Callable[[], Awaitable[None]]
    stop: Callable[[], Awaitable[None]] | None = None
    check: Check | None = None


@dataclass
class Background:
    """A long-running loop (a Kafka consumer, a relay); its crash stops the service."""

    name: str
    run: Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class HttpTls:
    """TLS on the HTTP port (uvicorn's ``ssl_*`` options): PEM files; ``ca_certs`` set means
    clients must present a certificate it signed (mutual TLS)."""

    certfile: str
    keyfile: str
    ca_certs: str | None = None
    minimum_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    #: A client that has not completed the TLS handshake by then is disconnected (asyncio's own
    #: default, which uvicorn leaves in place, is 60 s: sockets that connect and say nothing
    #: would pile up for a minute each).
    handshake_timeout_s: float = 20.0
    #: Given the port's SSL context once made (before the port listens) and the ALPN protocols it
    #: offers: e.g. to install an ``sni_callback`` that moves new connections onto a context
    #: made from renewed files.
    on_load: Callable[[ssl.SSLContext, Sequence[str]], None] | None = None

    def load(self, config: uvicorn.Config) -> None:
        """Loads ``config`` (its SSL context among the rest) with this minimum version applied."""
        config.load()
        assert config.ssl is not None
        config.ssl.minimum_version = self.minimum_version
        if self.on_load is not None:
            self.on_load(config.ssl, getattr(config.http_protocol_class, "alpn_protocols", None) or ())


class _Uvicorn(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, handshake_timeout_s: float | None = None) -> None:
        super().__init__(config)
        self._handshake_timeout_s = handshake_timeout_s

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # Signals are handled by ServiceHost, which stops uvicorn last.
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's start, its TLS listeners given ``ssl_handshake_timeout`` (uvicorn has no option
        for it): the loop's ``create_server`` is wrapped on this loop instance for the call."""
        timeout = self._handshake_timeout_s
        if timeout is None:
            await super().startup(sockets)
            return
        loop = asyncio.get_running_loop()
        create_server = loop.create_server

        async def with_handshake_timeout(*args: Any, **kwargs: Any) -> asyncio.Server:
            if kwargs.get("ssl") is not None:
                kwargs.setdefault("ssl_handshake_timeout", timeout)
            return await create_server(*args, **kwargs)

        loop.create_server = with_handshake_timeout  # type: ignore[method-assign]
        try:
            await super().startup(sockets)
        finally:
            del loop.create_server  # the instance attribute: the class's method again


@dataclass
class ServiceHost:
    name: str
    app: FastAPI
    host: str
    http_port: int
    readiness: Readiness
    grpc: GrpcServer | None = None
    components: list[Component] = field(default_factory=list)
    background: list[Background] = field(default_factory=list)
    grace_s: float = 10.0
    retry_max_s: float = 5.0
    #: TLS on the HTTP port (None: plaintext, the default).
    tls: HttpTls | None = None
    #: An ASGI app served in front of ``app`` (it answers what it knows and passes the rest
    #: on to ``app``); made from ``app`` when the HTTP server starts.
    front: Callable[[Any], Any] | None = None
    #: Bind the HTTP port with SO_REUSEPORT, for several processes serving it (the kernel spreads
    #: connections among them).
    http_reuse_port: bool = False
    #: Listen for HTTP only once every component has started (a process that shares the port
    #: with others that are serving already: none of its connections meets a process not ready).
    http_when_ready: bool = False
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _components_started: asyncio.Event = field(default_factory=asyncio.Event)

    def request_stop(self) -> None:
        self._stop.set()

    async def _connect(self, component: Component) -> None:
        delay = 0.1
        while not self._stop.is_set():
            try:
                await component.start()
                log.info("%s: connected %s", self.name, component.name)
                return
            except Exception as exc:  # noqa: BLE001 - retried until the dependency is up
                log.warning("%s: %s not available yet (%s); retrying in %.1fs", self.name, component.name, exc, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
                delay = min(delay * 2, self.retry_max_s)

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        tls = self.tls
        app = self.front(self.app) if self.front is not None else self.app
        config = uvicorn.Config(app, host=self.host, port=self.http_port, lifespan="off",
                                log_level="warning", access_log=False,
                                ssl_certfile=tls.certfile if tls else None, ssl_keyfile=tls.keyfile if tls else None,
                                ssl_ca_certs=tls.ca_certs if tls else None,
                                ssl_cert_reqs=ssl.CERT_REQUIRED if tls and tls.ca_certs else ssl.CERT_NONE)
        if tls is not None:
            tls.load(config)
        http = _Uvicorn(config, tls.handshake_timeout_s if tls is not None else None)
        http_task = asyncio.create_task(self._serve_http(http), name=f"{self.name}-http")
        for component in self.components:
            if component.check:
                self.readiness.add(component.name, component.check)
        if self.grpc:
            await self.grpc.start()
            await self.grpc.set_serving(False)
        started: list[Component] = []
        for component in self.components:
            await self._connect(component)
            if self._stop.is_set():
                break
            started.append(component)
        tasks = [asyncio.create_task(b.run(), name=b.name) for b in self.background] if not self._stop.is_set() else []
        self._components_started.set()
        exit_code = 0
        if not self._stop.is_set():
            self.readiness.started = True
            if self.grpc:
                await self.grpc.set_serving(True)
            log.info("%s: ready (http %s, grpc %s)", self.name, self.http_port, self.grpc.port if self.grpc else "-")
            stop_task = asyncio.create_task(self._stop.wait())
            done, _ = await asyncio.wait([stop_task, http_task, *tasks], return_when=asyncio.FIRST_COMPLETED)
            stop_task.cancel()
            for task in done:
                if task is not stop_task and not task.cancelled() and task.exception():
                    log.error("%s: %s crashed", self.name, task.get_name(), exc_info=task.exception())
                    exit_code = 1
        await self._shutdown(tasks, started, http, http_task)
        return exit_code

    async def _serve_http(self, http: uvicorn.Server) -> None:
        if self.http_when_ready:
            await self._components_started.wait()  # set also when stopped while starting
            if self._stop.is_set():
                return
        # bound here, not before: the kernel queues connections for a socket that listens, accepted or not
        sockets = [_reuse_port_socket(self.host, self.http_port)] if self.http_reuse_port else None
        await http.serve(sockets=sockets)

    async def _shutdown(self, tasks: list[asyncio.Task[None]], started: list[Component],
                        http: uvicorn.Server, http_task: asyncio.Task[None]) -> None:
        log.info("%s: draining", self.name)
        self.readiness.draining = True
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.grpc:
            await self.grpc.stop(self.grace_s)
        for component in reversed(started):
            if component.stop:
                try:
                    await component.stop()
                except Exception:  # noqa: BLE001 - keep closing the rest
                    log.exception("%s: error while closing %s", self.name, component.name)
        http.should_exit = True
        await asyncio.gather(http_task, return_exceptions=True)
        provider = trace.get_tracer_provider()
        if hasattr(provider, "shutdown"):
            provider.shutdown()
        log.info("%s: stopped", self.name)


def _reuse_port_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket with SO_REUSEPORT (and SO_REUSEADDR), as uvicorn would bind it otherwise."""
    family, kind, proto, _, address = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                         flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock
