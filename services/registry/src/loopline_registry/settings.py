"""Settings of the registry service (env prefix LOOPLINE_, nested delimiter __).

API keys can be provisioned from the environment as JSON, for example
``LOOPLINE_AUTH__KEYS='{"ops": {"role": "admin", "secret": "..."}}'``; they are
stored hashed when the service starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from loopline_core.settings import ServiceSettings
from pydantic import BaseModel, Field, SecretStr


class ArtifactSettings(BaseModel):
    #: "filesystem" (content-addressed under ``root``) or "s3" (any S3-compatible store).
    backend: Literal["filesystem", "s3"] = "filesystem"
    #: Where blobs live; by default ``<run_dir>/registry/artifacts``.
    root: Path | None = None
    #: S3: the endpoint (None: AWS), bucket, key prefix, region and credentials.
    endpoint_url: str | None = None
    bucket: str = "loopline-artifacts"
    prefix: str = ""
    region: str = "us-east-1"
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    #: S3: where uploads are spooled and verified first; by default ``<run_dir>/registry/spool``.
    spool_dir: Path | None = None
    max_upload_bytes: int = Field(default=1 << 30, gt=0)
    download_chunk_bytes: int = Field(default=1 << 20, gt=0)


class GateSettings(BaseModel):
    """The default promotion policy (a model may carry its own)."""

    metric: str = "accuracy"
    higher_is_better: bool = True
    margin: float = Field(default=0.0, ge=0)
    gated_aliases: list[str] = ["champion"]


class SeedKey(BaseModel):
    role: Literal["reader", "trainer", "operator", "admin"]
    secret: SecretStr = Field(min_length=16)


class AuthSettings(BaseModel):
    keys: dict[str, SeedKey] = {}


class RelaySettings(BaseModel):
    enabled: bool = True
    batch_size: int = Field(default=100, gt=0)
    poll_s: float = Field(default=0.5, gt=0)


class RolloutSettings(BaseModel):
    """The rollout controller (docs/rollout.md): canary steps and the non-inferiority test."""

    enabled: bool = True
    poll_s: float = Field(default=2.0, gt=0)
    steps: list[float] = [0.1, 0.25, 0.5, 1.0]
    #: Labelled predictions needed on each side before a step is judged.
    min_samples: int = Field(default=100, ge=2)
    #: One-sided significance level of both tests (non-inferiority, worse).
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    #: Accuracy points (or relative MAE) the canary may lose and still count as non-inferior.
    margin: float = Field(default=0.02, ge=0, lt=1)
    step_timeout_s: float = Field(default=600.0, gt=0)
    #: "canary" or "shadow": how candidates are evaluated unless listed in shadow_models.
    mode: Literal["canary", "shadow"] = "canary"
    shadow_models: list[str] = []


class RegistrySettings(ServiceSettings):
    service_name: str = "registry"
    http_port: int = 8081
    grpc_port: int = 9081
    #: "memory" keeps everything in the process (demos, benchmarks); it is lost on exit.
    backend: Literal["postgres", "memory"] = "postgres"
    #: The registry's own schema; tests use another one to stay isolated.
    postgres_schema: str = "registry"
    artifacts: ArtifactSettings = ArtifactSettings()
    gate: GateSettings = GateSettings()
    auth: AuthSettings = AuthSettings()
    relay: RelaySettings = RelaySettings()
    rollout: RolloutSettings = RolloutSettings()
