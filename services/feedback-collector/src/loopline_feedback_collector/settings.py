"""Settings of the feedback-collector service (env prefix LOOPLINE_, nested delimiter __)."""

from __future__ import annotations

from loopline_core.settings import ServiceSettings


class FeedbackSettings(ServiceSettings):
    service_name: str = "feedback-collector"
    http_port: int = 8082
    grpc_port: int = 9082
