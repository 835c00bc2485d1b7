"""Datasets and their immutable versions (what a model was trained and judged on)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from loopline_core.errors import InvalidArgument

from loopline_registry.domain.names import check_name, check_sha256, check_text


@dataclass(frozen=True)
class Dataset:
    name: str
    description: str
    created_at: datetime
    created_by: str


@dataclass(frozen=True)
class DatasetVersion:
    dataset: str
    version: int
    content_sha256: str
    row_count: int
    window_start: datetime | None
    window_end: datetime | None
    query: str
    created_at: datetime
    created_by: str


def new_dataset(name: str, description: str, *, at: datetime, actor: str) -> Dataset:
    return Dataset(check_name(name, "name"), check_text(description, "description"), at, actor)


def new_dataset_version(dataset: str, version: int, content_sha256: str, row_count: int,
                        window_start: datetime | None, window_end: datetime | None, query: str, *,
                        at: datetime, actor: str) -> DatasetVersion:
    if row_count < 0:
        raise InvalidArgument("row_count must not be negative", field="row_count")
    if window_start and window_end and window_start > window_end:
        raise InvalidArgument("the time window ends before it starts", field="window")
    return DatasetVersion(dataset, version, check_sha256(content_sha256, "content_sha256"), row_count,
                          window_start, window_end, check_text(query, "query", 65536), at, actor)
