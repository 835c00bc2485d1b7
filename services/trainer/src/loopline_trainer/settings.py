"""Settings of the trainer service (env prefix LOOPLINE_, nested delimiter __)."""

from __future__ import annotations

from loopline_core.settings import ServiceSettings


class TrainerSettings(ServiceSettings):
    service_name: str = "trainer"
    http_port: int = 8084
    grpc_port: int = 9084
