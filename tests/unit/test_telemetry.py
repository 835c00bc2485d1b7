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


def test_spans_are_exported_in_small_batches_unless_the_environment_says_otherwise(tmp_path: Path,
                                                                                  monkeypatch) -> None:
    """An export holds the GIL while it encodes its batch: 32 spans, not the SDK's 512."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from loopline_core.settings import TelemetrySettings
    from loopline_core.telemetry import EXPORT_BATCH, setup_tracing

    monkeypatch.setattr(trace, "set_tracer_provider", lambda provider: None)  # leave the process's own alone

    def batch_size(env: dict[str, str]) -> int:
        provider = setup_tracing("svc", TelemetrySettings(local_trace_dir=tmp_path), env)
        assert provider is not None
        [processor] = [p for p in provider._active_span_processor._span_processors  # noqa: SLF001
                       if isinstance(p, BatchSpanProcessor)]
        size = processor._batch_processor._max_export_batch_size  # noqa: SLF001
        provider.shutdown()
        return size

    assert EXPORT_BATCH == 32 and batch_size({}) == 32
    assert batch_size({"OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "100"}) == 100
