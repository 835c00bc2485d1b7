"""The rollout controller on the registry's real PostgreSQL schema, with a fake feedback collector."""

from __future__ import annotations

import sys
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "registry"))

from registry_it import READER, TRAINER, chunks, fresh_schema, settings, sha, started, torchscript, unique  # noqa: E402

from loopline_registry.bootstrap import wire  # noqa: E402
from loopline_registry.domain.deployment import TrafficSplit, Variant  # noqa: E402
from loopline_registry.domain.version import Evaluation  # noqa: E402
from loopline_registry.entrypoints.trace import current_trace  # noqa: E402
from loopline_registry.rollout.policy import Quality  # noqa: E402
from loopline_registry.rollout.wiring import controller_from  # noqa: E402
from loopline_registry.service.commands import (CreateModel, PromoteModelVersion,  # noqa: E402
                                                RegisterModelVersion, SetDeployment, UploadArtifact)
from loopline_registry.service.queries import AuditFilter, Page  # noqa: E402

SCHEMA = "rollout_it"
HOLDOUT = "ab" * 32


class FixedQuality:
    """What the feedback collector would answer: accuracy per version, and the windows asked for."""

    def __init__(self, accuracy: dict[int, float], n: int = 400) -> None:
        self.accuracy, self.n = accuracy, n
        self.asked: list[datetime] = []

    async def quality_since(self, model: str, since: datetime) -> list[Quality]:
        self.asked.append(since)
        return [Quality(v, variant, self.n, {"accuracy": a}) for v, a in self.accuracy.items()
                for variant in ("champion", "canary")]


async def register(h, model: str, accuracy: float) -> int:  # type: ignore[no-untyped-def]
    data = torchscript(accuracy)
    artifact = await h.upload_artifact(TRAINER, UploadArtifact("torchscript", sha(data), len(data)), chunks(data))
    version = await h.register_version(TRAINER, RegisterModelVersion(
        model, artifact.sha256, evaluations=(Evaluation(HOLDOUT, {"accuracy": accuracy}),)))
    return version.version


async def canary_model(h, caller=TRAINER) -> tuple[str, int, int]:  # type: ignore[no-untyped-def]
    model = unique("rollout")
    await h.create_model(TRAINER, CreateModel(model))
    first = await register(h, model, 0.80)
    await h.promote(TRAINER, PromoteModelVersion(model, first, "champion", "first"))
    second = await register(h, model, 0.90)
    await h.set_deployment(caller, SetDeployment(model, 0, (TrafficSplit(first, 0.9, Variant.CHAMPION),
                                                             TrafficSplit(second, 0.1, Variant.CANARY)), (), "canary"))
    return model, first, second


def config(postgres_dsn: str, kafka_bootstrap: str, root: Path):  # type: ignore[no-untyped-def]
    return settings(postgres_dsn, kafka_bootstrap, SCHEMA, root, relay={"enabled": False},
                    rollout={"min_samples": 100, "alpha": 0.05, "margin": 0.02})


@pytest.mark.asyncio
async def test_good_canary_steps_up_survives_restart_and_is_promoted(postgres_dsn: str, kafka_bootstrap: str,
                                                                     tmp_path: Path) -> None:
    await fresh_schema(postgres_dsn, SCHEMA)
    cfg = config(postgres_dsn, kafka_bootstrap, tmp_path)
    async with started(wire(cfg)) as registry:
        h = registry.handlers
        model, first, second = await canary_model(h)
        quality = FixedQuality({first: 0.80, second: 0.90})
        controller = controller_from(cfg, h.deps, quality)
        await controller.tick()
        dep = await h.get_deployment(READER, model)
        assert [(s.version, s.weight) for s in dep.splits] == [(first, 0.75), (second, 0.25)]
    async with started(wire(cfg)) as registry:  # a restarted registry resumes from the deployment
        h = registry.handlers
        controller = controller_from(cfg, h.deps, quality)
        await controller.tick()
        await controller.tick()
        dep = await h.get_deployment(READER, model)
        assert dep.splits == (TrafficSplit(second, 1.0, Variant.CHAMPION),)
        assert (await h.resolve_alias(READER, model, "champion")).version == second
        assert len(set(quality.asked)) == 3  # each step judged on the window since it began
        entries, _ = await h.list_audit(READER, AuditFilter(model=model), Page(500))
        reasons = [e.reason for e in entries if e.actor == "rollout-controller"]
        assert any("stepping to 0.25" in r and "z_ni=" in r for r in reasons)
        assert any("promoting" in r for r in reasons)


@pytest.mark.asyncio
async def test_worse_canary_is_rolled_back_and_audited_with_statistics(postgres_dsn: str, kafka_bootstrap: str,
                                                                      tmp_path: Path) -> None:
    await fresh_schema(postgres_dsn, SCHEMA)
    cfg = config(postgres_dsn, kafka_bootstrap, tmp_path)
    async with started(wire(cfg)) as registry:
        h = registry.handlers
        model, first, second = await canary_model(h)
        controller = controller_from(cfg, h.deps, FixedQuality({first: 0.90, second: 0.60}))
        await controller.tick()
        dep = await h.get_deployment(READER, model)
        assert dep.splits == (TrafficSplit(first, 1.0, Variant.CHAMPION),)
        assert (await h.resolve_alias(READER, model, "champion")).version == first
        entries, _ = await h.list_audit(READER, AuditFilter(model=model, action="deployment.changed"), Page(500))
        last = entries[-1]
        assert last.actor == "rollout-controller"
        assert "significantly worse" in last.reason and "p_worse=" in last.reason and "n=400" in last.reason


@pytest.mark.asyncio
async def test_the_step_continues_the_trace_stored_with_the_canary(postgres_dsn: str, kafka_bootstrap: str,
                                                                   tmp_path: Path,
                                                                   spans: InMemorySpanExporter) -> None:
    await fresh_schema(postgres_dsn, SCHEMA)
    cfg = config(postgres_dsn, kafka_bootstrap, tmp_path)
    async with started(wire(cfg)) as registry:
        h = registry.handlers
        with trace.get_tracer("test").start_as_current_span("SetDeployment canary") as request:
            trace_id, traceparent = current_trace()
            model, first, second = await canary_model(h, replace(TRAINER, trace_id=trace_id,
                                                                 traceparent=traceparent))
    async with started(wire(cfg)) as registry:  # the traceparent is read back from PostgreSQL
        h = registry.handlers
        spans.clear()
        await controller_from(cfg, h.deps, FixedQuality({first: 0.80, second: 0.90})).tick()
        [step] = [s for s in spans.get_finished_spans() if s.name == "rollout step"]
        assert step.context.trace_id == request.get_span_context().trace_id
        assert step.parent is not None and step.parent.span_id == request.get_span_context().span_id
        entries, _ = await h.list_audit(READER, AuditFilter(model=model, action="deployment.changed"), Page(500))
        assert [e.trace_id for e in entries[-2:]] == [trace_id, trace_id]
        assert entries[-1].actor == "rollout-controller"
