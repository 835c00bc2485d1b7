"""Settings of the serving-gateway service (env prefix LOOPLINE_, nested delimiter __)."""

from __future__ import annotations

from loopline_core.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    service_name: str = "serving-gateway"
    http_port: int = 8080
    grpc_port: int = 9080
