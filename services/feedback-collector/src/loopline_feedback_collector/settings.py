"""Settings of the feedback-collector service (env prefix LOOPLINE_, nested delimiter __)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from loopline_core.settings import ServiceSettings


class JoinSettings(BaseModel):
    #: Unmatched predictions and labels expire this long after they arrived.
    window_s: float = Field(default=7 * 24 * 3600.0, gt=0)
    #: How often the expiry sweep runs.
    expiry_interval_s: float = Field(default=60.0, gt=0)
    group_id: str = "feedback-collector"
    #: Records per poll, split into one PostgreSQL transaction per partition batch.
    max_records: int = Field(default=1200, ge=1)
    #: Partition lanes (batches of different partition numbers joined side by side).
    concurrent_partitions: bool = True
    #: The broker holds a fetch until this many bytes are there, or ``fetch_max_wait_ms``
    #: passed: larger batches (fewer transactions and requests) for a bounded delay.
    fetch_min_bytes: int = Field(default=64 * 1024, ge=1)
    fetch_max_wait_ms: int = Field(default=50, ge=0)
    #: A poll that got records asks once more for up to this long, so that what arrived
    #: while the last batch was joined is joined now rather than one batch later (0: off).
    poll_top_up_ms: int = Field(default=10, ge=0)


class FeedbackSettings(ServiceSettings):
    service_name: str = "feedback-collector"
    http_port: int = 8082
    grpc_port: int = 9082
    postgres_schema: str = "feedback"
    join: JoinSettings = JoinSettings()
    #: Largest label batch accepted by one REST or gRPC call.
    max_batch: int = Field(default=1000, ge=1)
