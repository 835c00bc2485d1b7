"""Settings of the trainer service (env prefix LOOPLINE_, nested delimiter __)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from loopline_core.settings import ServiceSettings


class TrainingSettings(BaseModel):
    """Defaults of a run; a request's params override the ones named in ``PARAMS``."""

    epochs: int = Field(default=60, ge=1)
    batch_size: int = Field(default=64, ge=1)
    learning_rate: float = Field(default=0.01, gt=0)
    hidden: int = Field(default=32, ge=1)
    #: Epochs without a better validation loss before training stops.
    patience: int = Field(default=5, ge=1)
    seed: int = 7
    validation_share: float = Field(default=0.15, gt=0, lt=0.5)
    holdout_share: float = Field(default=0.15, gt=0, lt=0.5)
    #: torch intra-op threads; the local machine has few cores and serves too.
    torch_threads: int = Field(default=1, ge=1)
    #: "cpu", "cuda", or "auto" (CUDA when present).
    device: str = "auto"


class DatasetSettings(BaseModel):
    #: "feedback" or "jsonl:<path>" or "entrypoint:<module>:<function>".
    default_source: str = "feedback"
    #: Labelled rows older than ``data_since`` added, as a share of the recent rows.
    older_share: float = Field(default=0.5, ge=0)
    #: Fewest labelled rows since ``data_since`` a feedback snapshot needs.
    min_rows: int = Field(default=200, ge=1)
    #: How long to wait for ``min_rows`` before the run fails.
    wait_s: float = Field(default=60.0, ge=0)
    poll_s: float = Field(default=2.0, gt=0)
    #: Most recent rows taken at most (0: no limit).
    max_rows: int = Field(default=50_000, ge=0)


class RolloutSettings(BaseModel):
    #: Share of live traffic a candidate gets when its canary is requested.
    canary_weight: float = Field(default=0.1, gt=0, lt=1)


class TrainerSettings(ServiceSettings):
    service_name: str = "trainer"
    http_port: int = 8084
    grpc_port: int = 9084
    #: "postgres" keeps runs in the trainer schema; "memory" is for demos and tests.
    backend: str = "postgres"
    consumer_group: str = "trainer"
    training: TrainingSettings = TrainingSettings()
    dataset: DatasetSettings = DatasetSettings()
    rollout: RolloutSettings = RolloutSettings()
