"""Where a run's rows come from: the feedback store, a JSONL file, or a user entry point."""

from __future__ import annotations

import asyncio
import importlib
import json
import math
import time
from pathlib import Path

import numpy as np

from loopline_core.errors import InvalidArgument, Unavailable

from loopline_trainer.domain.dataset import Snapshot
from loopline_trainer.domain.rows import snapshot_from_records
from loopline_trainer.domain.runs import RunRequest
from loopline_trainer.service.ports import Champion, Feedback
from loopline_trainer.settings import DatasetSettings


def read_jsonl(path: Path) -> Snapshot:
    if not path.is_file():
        raise InvalidArgument(f"dataset file {str(path)!r} does not exist", field="source")
    records = []
    with path.open() as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise InvalidArgument(f"{path}:{number} is not JSON: {exc.msg}", field="source") from exc
    return snapshot_from_records(records, query=json.dumps({"source": "jsonl", "path": str(path.resolve())}))


def from_entrypoint(spec: str, request: RunRequest) -> Snapshot:
    """``module:function`` called with (model, params), returning JSONL-shaped records."""
    module_name, _, attr = spec.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise InvalidArgument(f"dataset entry point {spec!r} cannot be loaded: {exc}", field="source") from exc
    records = list(function(request.model, dict(request.params)))
    return snapshot_from_records(records, query=json.dumps({"source": "entrypoint", "entrypoint": spec}))


def _merge(older: Snapshot, recent: Snapshot, query: str) -> Snapshot:
    if not len(older):
        return Snapshot(recent.feature_names, recent.features, recent.labels, recent.times, query)
    return Snapshot(recent.feature_names, np.concatenate([older.features, recent.features]),
                    np.concatenate([older.labels, recent.labels]), older.times + recent.times, query)


async def from_feedback(feedback: Feedback, request: RunRequest, settings: DatasetSettings,
                        champion: Champion | None) -> Snapshot:
    """Recent rows (since ``data_since``) plus ``older_share`` of that many older ones;
    waits up to ``wait_s`` for ``min_rows`` recent rows."""
    names = champion.feature_names if champion else None
    classes = [c for c in (champion.params.get("class_names", "") if champion else "").split(",") if c]
    since = request.data_since
    min_rows = int(request.params.get("min_rows", settings.min_rows))
    deadline = time.monotonic() + settings.wait_s
    while True:
        recent = await feedback.export(request.model, since=since, until=None, limit=settings.max_rows,
                                       feature_names=names, class_names=classes)
        if len(recent) >= min_rows:
            break
        if time.monotonic() >= deadline:
            raise Unavailable(f"only {len(recent)} labelled rows for {request.model!r} since "
                              f"{since.isoformat() if since else 'the beginning'}; {min_rows} are needed "
                              f"(waited {settings.wait_s:g}s)")
        await asyncio.sleep(settings.poll_s)
    older_limit = math.ceil(len(recent) * settings.older_share) if since else 0
    older = Snapshot(recent.feature_names, np.zeros((0, len(recent.feature_names)), np.float32), np.zeros(0))
    if older_limit:
        older = await feedback.export(request.model, since=None, until=since, limit=older_limit,
                                      feature_names=recent.feature_names, class_names=classes)
    query = json.dumps({"source": "feedback", "model": request.model, "include_shadow": False,
                        "recent": {"since": since.isoformat() if since else None, "limit": settings.max_rows,
                                   "rows": len(recent)},
                        "older": {"until": since.isoformat() if since else None, "limit": older_limit,
                                  "rows": len(older)}}, sort_keys=True)
    return _merge(older, recent, query)


async def snapshot_for(request: RunRequest, settings: DatasetSettings, feedback: Feedback,
                       champion: Champion | None) -> Snapshot:
    source = request.params.get("source", settings.default_source)
    if source == "feedback":
        return await from_feedback(feedback, request, settings, champion)
    if source.startswith("jsonl:"):
        return await asyncio.to_thread(read_jsonl, Path(source.removeprefix("jsonl:")))
    if source.startswith("entrypoint:"):
        return await asyncio.to_thread(from_entrypoint, source.removeprefix("entrypoint:"), request)
    raise InvalidArgument(f"unknown dataset source {source!r}: use 'feedback', 'jsonl:<path>' or "
                          "'entrypoint:<module>:<function>'", field="source")
