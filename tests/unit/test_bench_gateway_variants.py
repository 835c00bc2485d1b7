"""The gateway benchmark's variants: each gateway's environment, a baseline's own settings included."""

from __future__ import annotations

import pytest

from loadtests.gateway import processes


def test_a_baselines_own_sampling_share_becomes_its_sampler(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BENCH_GATEWAY_SAMPLE", raising=False)
    monkeypatch.delenv("BENCH_GATEWAY_BASELINE", raising=False)
    monkeypatch.setenv("BENCH_GATEWAY_BASELINE_ENV", "BENCH_GATEWAY_SAMPLE=0.01,BENCH_GATEWAY_LOG=0")
    (_, current), (_, baseline) = processes.variants()
    assert "OTEL_TRACES_SAMPLER" not in current  # every request traced
    assert (baseline["OTEL_TRACES_SAMPLER"], baseline["OTEL_TRACES_SAMPLER_ARG"]) == ("parentbased_traceidratio", "0.01")
    assert baseline["BENCH_GATEWAY_LOG"] == "0"


def test_a_sampling_share_for_the_run_applies_to_both(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_GATEWAY_SAMPLE", "0.1")
    monkeypatch.setenv("BENCH_GATEWAY_BASELINE", "/tmp/elsewhere")
    monkeypatch.delenv("BENCH_GATEWAY_BASELINE_ENV", raising=False)
    (_, current), (_, baseline) = processes.variants()
    assert current["OTEL_TRACES_SAMPLER_ARG"] == baseline["OTEL_TRACES_SAMPLER_ARG"] == "0.1"
    assert baseline["PYTHONPATH"].startswith("/tmp/elsewhere")
