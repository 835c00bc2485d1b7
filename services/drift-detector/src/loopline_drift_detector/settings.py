"""Settings of the drift-detector service (env prefix LOOPLINE_, nested delimiter __)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from loopline_core.settings import ServiceSettings
from pydantic import BaseModel, Field, SecretStr

from loopline_drift_detector.domain.config import MonitorConfig
from loopline_drift_detector.domain.retrain import RetrainConfig


class RetrainOptions(BaseModel):
    cooldown_s: float = Field(default=6 * 3600, ge=0)
    evidence_window_s: float = Field(default=3600, gt=0)
    min_evidence: float = Field(default=2.0, gt=0)
    request_timeout_s: float = Field(default=24 * 3600, gt=0)

    def config(self) -> RetrainConfig:
        return RetrainConfig(cooldown=timedelta(seconds=self.cooldown_s),
                             evidence_window=timedelta(seconds=self.evidence_window_s),
                             min_evidence=self.min_evidence,
                             request_timeout=timedelta(seconds=self.request_timeout_s))


class DriftSettings(ServiceSettings):
    service_name: str = "drift-detector"
    http_port: int = 8083
    grpc_port: int = 0
    postgres_schema: str = "drift"
    #: Consumer group of the routing stage (predictions + labels → loopline.drift-inputs.v1).
    route_group: str = "drift-detector.route"
    #: Consumer group of the detecting stage (owns detector state per drift-inputs partition).
    detect_group: str = "drift-detector"
    max_records: int = Field(default=2000, ge=1)
    #: Detector state is saved at least this often (and always before a decision is published).
    checkpoint_interval_s: float = Field(default=5.0, gt=0)
    #: HMAC key of the pickled checkpoints; required (a checkpoint is only read back if signed).
    checkpoint_key: SecretStr = SecretStr("")
    #: Default monitor configuration (MonitorConfig.from_mapping), and overrides per model.
    monitor: dict[str, Any] = Field(default_factory=dict)
    models: dict[str, dict[str, Any]] = Field(default_factory=dict)
    retrain: RetrainOptions = RetrainOptions()

    def monitor_config(self, model: str) -> MonitorConfig:
        return MonitorConfig.from_mapping({**self.monitor, **self.models.get(model, {})})
