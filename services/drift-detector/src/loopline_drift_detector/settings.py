"""Settings of the drift-detector service (env prefix LOOPLINE_, nested delimiter __)."""

from __future__ import annotations

from loopline_core.settings import ServiceSettings


class DriftSettings(ServiceSettings):
    service_name: str = "drift-detector"
    http_port: int = 8083
    grpc_port: int = 0
