"""``loopline trace`` on span files recorded by the services' own JSONL exporter."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from loopline_core.telemetry import JsonlSpanExporter
from opentelemetry import trace as otel
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Link

from loopline_cli import trace as trace_cli


def tracer(run_dir: Path, service: str) -> otel.Tracer:
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}))
    provider.add_span_processor(SimpleSpanProcessor(JsonlSpanExporter(run_dir / "traces" / f"{service}.jsonl")))
    return provider.get_tracer(service)


def record(run_dir: Path) -> tuple[str, str]:
    """A drift check in one trace; a retrain in another trace, linked to it, across two services."""
    drift, trainer, registry = (tracer(run_dir, s) for s in ("drift-detector", "trainer", "registry"))
    with drift.start_as_current_span("drift.check", attributes={"model": "fraud", "version": 1}) as d:
        with drift.start_as_current_span("publish RetrainRequested",
                                         attributes={"messaging.destination.name": "loopline.models.v1"}):
            pass
    with trainer.start_as_current_span("train", links=[Link(d.get_span_context())],
                                       attributes={"model": "fraud", "request_id": "r-1"}) as t:
        with trainer.start_as_current_span("RegisterModelVersion"):
            with registry.start_as_current_span("registry.register", attributes={"version": 2}):
                pass
    return format(d.get_span_context().trace_id, "032x"), format(t.get_span_context().trace_id, "032x")


def show(run_dir: Path, trace_id: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = trace_cli.run(argparse.Namespace(trace_id=trace_id, run_dir=run_dir))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_tree_spans_services_and_links(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    drift_trace, retrain_trace = record(tmp_path)
    code, out, _ = show(tmp_path, retrain_trace, capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith(f"trace {retrain_trace}: 3 spans, 2 services (registry, trainer)")
    assert lines[1].startswith("└─ trainer: train ") and "request_id=r-1" in lines[1]
    assert f"linked from trace {drift_trace}" in lines[2]
    assert "trainer: RegisterModelVersion" in lines[3]
    assert lines[4].strip().startswith("└─ registry: registry.register") and "version=2" in lines[4]
    code, out, _ = show(tmp_path, drift_trace.upper(), capsys)
    assert code == 0 and "drift-detector: drift.check" in out
    assert f"continued in trace {retrain_trace}" in out


def test_bad_input_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = show(tmp_path, "xyz", capsys)
    assert code == 2 and "32 hexadecimal digits" in err
    code, _, err = show(tmp_path, "ab" * 16, capsys)
    assert code == 2 and "no span files" in err
    record(tmp_path)
    with (tmp_path / "traces" / "trainer.jsonl").open("a") as f:
        f.write("{broken " + "cd" * 16 + "\n")
    code, _, err = show(tmp_path, "cd" * 16, capsys)
    assert code == 2 and "not a span record" in err and "no span of trace" in err
