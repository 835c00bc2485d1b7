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


def test_the_demo_splits_a_source_into_bootstrap_and_live_parts(tmp_path: Path) -> None:
    from loopline_cli.loop.live import LoopOptions, split_source

    head, live, change = split_source(LoopOptions(source="synthetic:n=300,switch=200", bootstrap=120))
    rest = list(live)
    assert len(head) == 120 and len(rest) == 180 and change == 80
    assert head + rest == list(Synthetic(n=300, switch=200))
    path = tmp_path / "s.jsonl"
    write_jsonl(head + rest, path)
    with pytest.raises(SourceError, match="--change-at"):
        split_source(LoopOptions(source=f"jsonl:{path}", bootstrap=100))
    _, _, change = split_source(LoopOptions(source=f"jsonl:{path}", bootstrap=100, change_at=250))
    assert change == 150
    with pytest.raises(SourceError, match="must come after the 250 bootstrap records"):
        split_source(LoopOptions(source="synthetic:n=300,switch=200", bootstrap=250))
    with pytest.raises(SourceError, match="has only 300 records"):
        split_source(LoopOptions(source=f"jsonl:{path}", bootstrap=400, change_at=500))


def test_the_champion_at_full_is_read_off_the_deployment() -> None:
    from loopline.common.v1 import common_pb2
    from loopline.events.v1 import models_pb2
    from loopline.registry.v1 import registry_pb2 as rpb

    from loopline_cli.loop.registry import full_champion

    def deployment(*splits: tuple[int, float]) -> rpb.Deployment:
        return rpb.Deployment(model="m", splits=[models_pb2.TrafficSplit(version=v, weight=w,
                                                                         variant=common_pb2.VARIANT_CHAMPION)
                                                 for v, w in splits])

    assert full_champion(deployment((2, 1.0))) == 2
    assert full_champion(deployment((1, 0.8), (2, 0.2))) is None
    assert full_champion(deployment()) is None


def test_the_rollout_controller_reads_the_since_window_in_both_spellings() -> None:
    from loopline.common.v1 import common_pb2
    from loopline.feedback.v1 import feedback_pb2

    from loopline_registry.rollout.adapters import windows_since

    response = feedback_pb2.GetQualityResponse(model="m", windows=[
        feedback_pb2.QualityWindow(version=1, variant=common_pb2.VARIANT_CHAMPION, window="since:2026-01-01T00:00:00Z",
                                   labelled=50, metrics={"accuracy": 0.5}),
        feedback_pb2.QualityWindow(version=2, variant=common_pb2.VARIANT_CANARY,
                                   window="since 2026-01-01T00:00:00+00:00", labelled=40, metrics={"accuracy": 0.9}),
        feedback_pb2.QualityWindow(version=2, variant=common_pb2.VARIANT_CANARY, window="count:1000", labelled=900)])
    got = windows_since(response)
    assert [(q.version, q.variant, q.labelled) for q in got] == [(1, "champion", 50), (2, "canary", 40)]


def test_the_demo_refuses_a_bad_source_before_starting_anything(tmp_path: Path) -> None:
    from loopline_cli.main import main

    path = tmp_path / "stream.jsonl"
    path.write_text(json.dumps({"features": {"a": 1}, "label": "yes"}) + "\n")
    assert main(["--run-dir", str(tmp_path / "run"), "demo", "--source", f"jsonl:{path}", "--change-at", "1",
                 "--bootstrap", "1"]) == 2
    assert main(["--run-dir", str(tmp_path / "run"), "demo", "--source", "synthetic:n=100,switch=50",
                 "--bootstrap", "60"]) == 2
    assert not (tmp_path / "run").exists()


def test_the_report_names_every_figure_and_the_verdict(tmp_path: Path) -> None:
    from loopline.events.v1 import drift_pb2, training_pb2

    from loopline_cli.loop.live import LoopResult, render_report
    from loopline_cli.loop.platform import Bootstrapped, Timeline
    from loopline_cli.loop.scenario import Run

    outcomes = [Outcome(t / 10, (t % 20 != 0) if not 300 <= t < 700 else t % 2 == 0, 1 if t < 700 else 2)
                for t in range(1000)]
    run = Run(outcomes=outcomes, change_s=30.0, detected_s=33.0, promoted_s=70.0, new_champion=2, labels_sent=1000,
              requests=1000, began=100.0)
    timeline = Timeline(drift_at=133.0, drift=drift_pb2.DriftDetected(detector="accuracy_drop", version=1, kind=3),
                        retrain_at=133.0, retrain_trace_id="ab" * 16, training_started_at=150.0,
                        training_completed_at=151.0,
                        completed=training_pb2.TrainingCompleted(version=2, gate_passed=True),
                        deployments=[(100.0, [(1, 1.0)]), (152.0, [(1, 0.8), (2, 0.2)]), (170.0, [(2, 1.0)])])
    summary = summarize(outcomes, change_s=30.0, detected_s=33.0, promoted_s=70.0)
    series = accuracy_series(outcomes, 4.0)
    result = LoopResult("m", Bootstrapped("m", 1, "run-1", 0.97, 1.0, 2.0), run, summary, timeline, series,
                        text_chart(series, bucket_s=4.0), None, ["deployment.changed: rollout v2: promoting"])
    report = render_report(result, tmp_path)
    assert "detection delay          3.0s (accuracy_drop on v1, performance)" in report
    assert "change -> new champion   40.0s (v2 at 100%; target <= 120s: met)" in report
    assert "+22.0s v1:0.8/v2:0.2 -> +40.0s v2:1" in report
    assert f"trace {'ab' * 16}" in report and "=== RECOVERED ===" in report
    failed = LoopResult("m", result.boot, Run(outcomes=outcomes[:500], change_s=30.0), summarize(
        outcomes[:500], change_s=30.0, detected_s=None, promoted_s=None), Timeline(), series, "", None)
    assert "=== NOT RECOVERED: no new champion reached 100% ===" in render_report(failed, tmp_path)
