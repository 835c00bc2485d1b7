"""Typed settings, built once per process in ``__main__`` and passed down.

Nothing here reads the environment at import time: call ``load(SettingsClass)``
from an entrypoint. Every service's settings class composes the sections it
needs; each section reads variables with its own prefix, e.g.
``LOOPLINE_KAFKA_BOOTSTRAP_SERVERS`` or ``LOOPLINE_POSTGRES_DSN``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class KafkaSettings(BaseModel):
    bootstrap_servers: str = "127.0.0.1:9092"
    #: Upper bound of retries of a retryable handler error before dead-lettering.
    max_retries: int = Field(default=5, ge=0)
    retry_backoff_ms: int = Field(default=200, ge=1)
    retry_backoff_max_ms: int = Field(default=5_000, ge=1)


class PostgresSettings(BaseModel):
    dsn: str = "postgresql://loopline@127.0.0.1:5432/loopline"
    min_pool_size: int = Field(default=1, ge=0)
    max_pool_size: int = Field(default=10, ge=1)


class TritonSettings(BaseModel):
    http_url: str = "127.0.0.1:8000"
    grpc_url: str = "127.0.0.1:8001"
    #: Where repository entries are materialised (explicit model control).
    model_repository: Path = Path(".run/triton/models")


class TelemetrySettings(BaseModel):
    #: Where spans go when no OTLP endpoint is configured (one JSONL file per service).
    local_trace_dir: Path = Path(".run/traces")


class ServiceEndpoints(BaseModel):
    """Where the other services listen (gRPC), for services that call them."""

    registry: str = "127.0.0.1:9081"
    trainer: str = "127.0.0.1:9084"
    feedback_collector: str = "127.0.0.1:9082"
    #: Bearer key this service presents to the registry (``authorization: Bearer <key>``).
    registry_api_key: str = ""


class ServiceSettings(BaseSettings):
    """Settings common to every Loopline service; subclass per service."""

    model_config = SettingsConfigDict(
        env_prefix="LOOPLINE_", env_nested_delimiter="__", extra="ignore"
    )

    service_name: str = "loopline"
    host: str = "127.0.0.1"
    http_port: int = Field(default=0, ge=0, le=65535)
    #: 0 disables the gRPC server for services that have none.
    grpc_port: int = Field(default=0, ge=0, le=65535)
    run_dir: Path = Path(".run")
    shutdown_grace_s: float = Field(default=10.0, gt=0)
    kafka: KafkaSettings = KafkaSettings()
    postgres: PostgresSettings = PostgresSettings()
    triton: TritonSettings = TritonSettings()
    telemetry: TelemetrySettings = TelemetrySettings()
    endpoints: ServiceEndpoints = ServiceEndpoints()


S = TypeVar("S", bound=BaseSettings)


def load(cls: type[S], **overrides: object) -> S:
    """Build settings from the environment (and explicit overrides) once."""
    return cls(**overrides)
