"""Settings of the registry service (env prefix LOOPLINE_, nested delimiter __)."""

from __future__ import annotations

from loopline_core.settings import ServiceSettings


class RegistrySettings(ServiceSettings):
    service_name: str = "registry"
    http_port: int = 8081
    grpc_port: int = 9081
