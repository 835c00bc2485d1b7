from __future__ import annotations

import json
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from loopline_core.telemetry import JsonlSpanExporter


def test_spans_are_kept_locally_as_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "traces" / "svc.jsonl"
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(JsonlSpanExporter(path)))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("parent") as parent, tracer.start_as_current_span("child", attributes={"k": 1}):
        pass
    spans = [json.loads(line) for line in path.read_text().splitlines()]
    assert [s["name"] for s in spans] == ["child", "parent"]
    child, root = spans
    assert child["trace_id"] == root["trace_id"] == format(parent.get_span_context().trace_id, "032x")
    assert child["parent_span_id"] == root["span_id"] and root["parent_span_id"] is None
    assert child["attributes"] == {"k": 1}
