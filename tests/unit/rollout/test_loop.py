"""The demo loop's traffic sources and report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loopline_cli.loop.report import Outcome, accuracy_series, summarize, text_chart
from loopline_cli.loop.sources import Record, SourceError, Synthetic, open_source, write_jsonl


def entry_records() -> list[dict[str, object]]:
    return [{"features": {"a": 1.0}, "label": 1, "event_time": "2026-01-01T00:00:00+00:00"}]


def test_synthetic_is_seeded_and_changes_concept_not_inputs() -> None:
    a, b = list(open_source("synthetic:seed=3,n=2000,switch=1000")), list(Synthetic(seed=3, n=2000, switch=1000))
    assert a == b
    before, after = Synthetic(seed=3).weights(0), Synthetic(seed=3).weights(1)
    # a model of the old concept scores well before the switch and badly after it
    def old(r: Record) -> int:
        return int(sum(w * r.features[f"f{i}"] for i, w in enumerate(before)) > 0)
    acc_before = sum(old(r) == r.label for r in a[:1000]) / 1000
    acc_after = sum(old(r) == r.label for r in a[1000:]) / 1000
    assert acc_before == 1.0 and acc_after < 0.8
    mean_before = sum(r.features["f0"] for r in a[:1000]) / 1000
    mean_after = sum(r.features["f0"] for r in a[1000:]) / 1000
    assert abs(mean_before - mean_after) < 0.15 and after != before


def test_jsonl_round_trip_and_entry_point(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    records = list(open_source("synthetic:n=20,switch=10"))
    assert write_jsonl(records, path) == 20
    assert list(open_source(f"jsonl:{path}")) == records
    loaded = list(open_source("test_loop:entry_records"))
    assert loaded[0].features == {"a": 1.0} and loaded[0].label == 1


@pytest.mark.parametrize(("line", "message"), [
    ("{not json", "not JSON"),
    (json.dumps({"features": {}, "label": 1}), "non-empty object"),
    (json.dumps({"features": {"a": "x"}, "label": 1}), "must be numbers"),
    (json.dumps({"features": {"a": 1}, "label": -1}), "class index"),
    (json.dumps({"features": {"a": 1}, "label": 0, "event_time": "yesterday"}), "ISO 8601"),
])
def test_bad_jsonl_records_are_named(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(SourceError, match=message):
        list(open_source(f"jsonl:{path}"))


def test_bad_specs_are_named() -> None:
    for spec, message in [("synthetic:speed=3", "unknown option"), ("synthetic:n=x", "integer"),
                          ("synthetic:n=10,switch=20", "switch <= n"), ("nope", "unknown source"),
                          ("no_such_module_xyz:f", "cannot be loaded")]:
        with pytest.raises(SourceError, match=message):
            list(open_source(spec))


def test_summary_and_chart() -> None:
    outcomes = ([Outcome(t / 10, True, 1) for t in range(0, 300)]
                + [Outcome(t / 10, t % 2 == 0, 1) for t in range(300, 500)]
                + [Outcome(t / 10, t % 20 != 0, 2) for t in range(500, 800)])
    s = summarize(outcomes, change_s=30.0, detected_s=38.0, promoted_s=50.0)
    assert (s.before, s.during, round(s.after, 2)) == (1.0, 0.5, 0.95)
    assert (s.detection_delay_s, s.recovery_s) == (8.0, 20.0)
    assert not s.recovered  # 0.95 is 5 points below 1.0
    assert summarize(outcomes, change_s=30.0, detected_s=38.0, promoted_s=50.0, tolerance=0.06).recovered
    assert not summarize(outcomes, change_s=30.0, detected_s=None, promoted_s=None).recovered
    series = accuracy_series(outcomes, 10.0)
    assert len(series) == 8 and series[0] == (0.0, 1.0, 100)
    chart = text_chart(series, marks={"change": 30.0}, bucket_s=10.0)
    assert chart.splitlines()[0].startswith("1.00 |███") and "^ change (30s)" in chart
