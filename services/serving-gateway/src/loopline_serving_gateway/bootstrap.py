"""Composition root of the serving-gateway service: the only place that picks adapters."""

from __future__ import annotations

from loopline_core.components import GrpcPeer
from loopline_core.servers.assemble import assemble
from loopline_core.servers.host import ServiceHost

from loopline_serving_gateway.adapters.triton import TritonConnection
from loopline_serving_gateway.settings import GatewaySettings


def build(settings: GatewaySettings) -> ServiceHost:
    triton = TritonConnection(settings.triton.http_url)
    registry = GrpcPeer("registry", settings.endpoints.registry)
    return assemble(settings, components=[triton.component(), registry.component()])
