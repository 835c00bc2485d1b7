"""Traffic sources for the demo loop.

A source is an iterable of ``Record``: features by name, the true label (class
index), and the event time. Three kinds, chosen by a spec string:

- ``synthetic[:seed=7,n=4000,switch=2000,features=6]``: the built-in seeded
  classification stream; at ``switch`` the labelling function changes while
  the input distribution stays the same (a pure concept change);
- ``jsonl:<path>``: one ``{"features": {name: value}, "label": ..., "event_time": ...}`` per line;
- ``module:function``: a Python entry point returning an iterable of records
  (``Record`` or dicts shaped like the JSONL lines).
"""

from __future__ import annotations

import importlib
import json
import math
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any


class SourceError(ValueError):
    """A source spec or record that cannot be used: the message names the problem."""


@dataclass(frozen=True)
class Record:
    features: dict[str, float]
    label: int
    event_time: datetime


def record_from(raw: Any, where: str) -> Record:
    if isinstance(raw, Record):
        return raw
    if not isinstance(raw, dict):
        raise SourceError(f"{where}: a record must be an object with features, label, event_time")
    features = raw.get("features")
    if not isinstance(features, dict) or not features:
        raise SourceError(f"{where}: 'features' must be a non-empty object of name: number")
    try:
        values = {str(k): float(v) for k, v in features.items()}
    except (TypeError, ValueError) as exc:
        raise SourceError(f"{where}: feature values must be numbers ({exc})") from None
    if any(not math.isfinite(v) for v in values.values()):
        raise SourceError(f"{where}: feature values must be finite")
    label = raw.get("label")
    if isinstance(label, bool) or not isinstance(label, int) or label < 0:
        raise SourceError(f"{where}: 'label' must be a class index (integer >= 0), got {label!r}")
    stamp = raw.get("event_time")
    try:
        at = datetime.fromisoformat(stamp) if isinstance(stamp, str) else datetime.now(UTC)
    except ValueError:
        raise SourceError(f"{where}: 'event_time' must be an ISO 8601 time, got {stamp!r}") from None
    return Record(values, label, at if at.tzinfo else at.replace(tzinfo=UTC))


@dataclass(frozen=True)
class Synthetic:
    """Gaussian inputs; the label is the sign of a linear score, whose weights change at ``switch``."""

    seed: int = 7
    n: int = 4000
    switch: int = 2000
    features: int = 6
    start: datetime = datetime(2026, 1, 1, tzinfo=UTC)

    def names(self) -> list[str]:
        return [f"f{i}" for i in range(self.features)]

    def weights(self, concept: int) -> list[float]:
        rng = random.Random(self.seed * 1000 + concept)
        return [rng.choice((-1.0, 1.0)) * rng.uniform(0.5, 1.5) for _ in range(self.features)]

    def __iter__(self) -> Iterator[Record]:
        rng = random.Random(self.seed)
        before, after = self.weights(0), self.weights(1)
        if all(a * b > 0 for a, b in zip(before, after)):  # make the change real: flip half the signs
            after = [w if i % 2 else -w for i, w in enumerate(after)]
        names = self.names()
        for i in range(self.n):
            x = [rng.gauss(0.0, 1.0) for _ in names]
            w = before if i < self.switch else after
            label = int(sum(a * b for a, b in zip(w, x)) > 0)
            yield Record(dict(zip(names, x)), label, self.start + timedelta(milliseconds=100 * i))


def _synthetic(options: str) -> Synthetic:
    kwargs: dict[str, int] = {}
    for part in filter(None, options.split(",")):
        key, _, value = part.partition("=")
        if key not in ("seed", "n", "switch", "features"):
            raise SourceError(f"synthetic source: unknown option {key!r} (seed, n, switch, features)")
        try:
            kwargs[key] = int(value)
        except ValueError:
            raise SourceError(f"synthetic source: {key} must be an integer, got {value!r}") from None
    source = Synthetic(**kwargs)
    if source.n <= 0 or source.features <= 0 or not 0 <= source.switch <= source.n:
        raise SourceError(f"synthetic source: need n > 0, features > 0 and 0 <= switch <= n, got {kwargs}")
    return source


def _jsonl(path: Path) -> Iterator[Record]:
    if not path.is_file():
        raise SourceError(f"jsonl source: no file {path}")
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SourceError(f"{path}:{number}: not JSON ({exc.msg})") from None
            yield record_from(raw, f"{path}:{number}")


def _entry_point(spec: str) -> Iterator[Record]:
    module_name, _, function_name = spec.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as exc:
        raise SourceError(f"entry point {spec!r} cannot be loaded: {exc}") from None
    for i, raw in enumerate(function()):
        yield record_from(raw, f"{spec} record {i}")


def open_source(spec: str) -> Iterable[Record]:
    if spec == "synthetic" or spec.startswith("synthetic:"):
        return _synthetic(spec.partition(":")[2])
    if spec.startswith("jsonl:"):
        return _jsonl(Path(spec[len("jsonl:"):]))
    module, sep, function = spec.partition(":")
    if sep and module and function.isidentifier():
        return _entry_point(spec)
    raise SourceError(f"unknown source {spec!r}: use synthetic[:options], jsonl:<path> or module:function")


def write_jsonl(records: Iterable[Record], path: Path) -> int:
    """Writes records in the JSONL source format (the demo's bootstrap dataset); returns the count."""
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for r in records:
            out.write(json.dumps({"features": r.features, "label": r.label,
                                  "event_time": r.event_time.isoformat()}) + "\n")
            count += 1
    return count
