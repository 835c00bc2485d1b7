"""Records in the JSONL exchange format turned into a snapshot.

One record: ``{"features": {"name": value, ...}, "label": <class index or number>,
"event_time": "<RFC 3339>"}`` (event_time optional). The first record fixes the
feature names and their order; every record must carry exactly those names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np

from loopline_core.errors import InvalidArgument

from loopline_trainer.domain.dataset import Snapshot


def _time(value: Any, where: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidArgument(f"{where}: event_time {value!r} is not RFC 3339", field="event_time") from exc
    if moment.tzinfo is None:
        raise InvalidArgument(f"{where}: event_time {value!r} has no UTC offset", field="event_time")
    return moment


def _number(value: Any, where: str, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgument(f"{where}: {name} must be a number, got {value!r}", field=name)
    return float(value)


def snapshot_from_records(records: Iterable[Mapping[str, Any]], *, query: str,
                          feature_names: Sequence[str] | None = None) -> Snapshot:
    names: list[str] | None = list(feature_names) if feature_names else None
    rows: list[list[float]] = []
    labels: list[float] = []
    times: list[datetime | None] = []
    for i, record in enumerate(records):
        where = f"record {i + 1}"
        features = record.get("features") if isinstance(record, Mapping) else None
        if not isinstance(features, Mapping) or not features:
            raise InvalidArgument(f"{where}: 'features' must be a non-empty object", field="features")
        if names is None:
            names = list(features)
        if set(features) != set(names):
            raise InvalidArgument(f"{where}: features {sorted(features)} differ from {sorted(names)}",
                                  field="features")
        rows.append([_number(features[n], where, f"features.{n}") for n in names])
        labels.append(_number(record.get("label"), where, "label"))
        times.append(_time(record.get("event_time"), where))
    if names is None:
        raise InvalidArgument("the dataset has no records", field="rows")
    return Snapshot(tuple(names), np.asarray(rows, dtype=np.float32), np.asarray(labels, dtype=np.float64),
                    tuple(times), query)
