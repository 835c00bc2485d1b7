"""Puts a ServiceHost together from a service's settings and its parts."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter
from prometheus_client import CollectorRegistry

from loopline_core.servers.grpc import GrpcServer, Register
from loopline_core.servers.host import Background, Component, ServiceHost
from loopline_core.servers.http import create_app
from loopline_core.servers.readiness import Readiness
from loopline_core.settings import ServiceSettings


def assemble(
    settings: ServiceSettings,
    *,
    components: Sequence[Component] = (),
    background: Sequence[Background] = (),
    routers: Sequence[APIRouter] = (),
    grpc_services: Sequence[tuple[str, Register]] = (),
    metrics: CollectorRegistry | None = None,
) -> ServiceHost:
    """``grpc_services`` pairs a full service name (for gRPC health) with its registration."""
    readiness = Readiness()
    app = create_app(settings.service_name, readiness, metrics or CollectorRegistry(), list(routers))
    grpc_server = None
    if settings.grpc_port:
        grpc_server = GrpcServer(
            settings.host,
            settings.grpc_port,
            [register for _, register in grpc_services],
            [name for name, _ in grpc_services],
        )
    return ServiceHost(
        name=settings.service_name,
        app=app,
        host=settings.host,
        http_port=settings.http_port,
        readiness=readiness,
        grpc=grpc_server,
        components=list(components),
        background=list(background),
        grace_s=settings.shutdown_grace_s,
    )
