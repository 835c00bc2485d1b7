"""The controller's steps, promotion and rollback continue the trace of the change that started the canary.

The registry is wired by its real bootstrap with in-memory adapters; the
outbox goes through the real Kafka publisher onto core's in-memory broker, so
the "send" spans of the controller's events are checked too.
"""

from __future__ import annotations

import doctest
import sys
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "registry"))

from registry_world import READER, TRAINER, World, settings  # noqa: E402
from loopline_core.kafka.memory import InMemoryBroker  # noqa: E402
from loopline_core.kafka.producer import EventProducer  # noqa: E402
from loopline_core.settings import KafkaSettings  # noqa: E402

from loopline_registry.adapters.kafka_publisher import KafkaPublisher  # noqa: E402
from loopline_registry.domain.deployment import TrafficSplit, Variant  # noqa: E402
from loopline_registry.entrypoints.trace import current_trace  # noqa: E402
from loopline_registry.rollout import tracing  # noqa: E402
from loopline_registry.rollout.policy import Quality  # noqa: E402
from loopline_registry.rollout.wiring import controller_from  # noqa: E402
from loopline_registry.service.commands import PromoteModelVersion, SetDeployment  # noqa: E402
from loopline_registry.service.queries import AuditFilter, Page  # noqa: E402
from loopline_registry.service.relay import OutboxRelay  # noqa: E402

#: Live accuracy of (champion, candidate) per model, and labelled predictions per side.
LIVE = {"good": (0.80, 0.90, 400), "bad": (0.90, 0.60, 400), "quiet": (0.80, 0.90, 10)}


class LiveQuality:
    """What the feedback collector would answer for each model's current split."""

    def __init__(self, world: World) -> None:
        self.world = world

    async def quality_since(self, model: str, since: datetime) -> list[Quality]:
        champion, candidate, n = LIVE[model]
        dep = await self.world.h.get_deployment(READER, model)
        return [*(Quality(s.version, s.variant.value, n, {"accuracy": champion if s.version == 1 else candidate})
                  for s in dep.splits),
                *(Quality(v, "shadow", n, {"accuracy": candidate}) for v in dep.shadow_versions)]


async def start_canary(world: World, model: str, *, traced: bool = True) -> trace.SpanContext | None:
    """v1 champion, v2 on a 10% canary, set by a request in a trace of its own (as the trainer's would be)."""
    await world.model(model)
    first, second = await world.version(model, 0.80), await world.version(model, 0.90)
    await world.h.promote(TRAINER, PromoteModelVersion(model, first, "champion", "bootstrap"))
    splits = (TrafficSplit(first, 0.9, Variant.CHAMPION), TrafficSplit(second, 0.1, Variant.CANARY))
    if not traced:
        await world.h.set_deployment(TRAINER, SetDeployment(model, 0, splits, (), "canary requested"))
        return None
    with trace.get_tracer("test").start_as_current_span(f"SetDeployment {model}") as request:
        trace_id, traceparent = current_trace()
        caller = replace(TRAINER, trace_id=trace_id, traceparent=traceparent)
        await world.h.set_deployment(caller, SetDeployment(model, 0, splits, (), "canary requested"))
    return request.get_span_context()


def rollout_spans(spans: InMemorySpanExporter, model: str) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans()
            if s.name.startswith("rollout ") and s.attributes.get("loopline.model") == model]


async def relay_all(world: World, broker: InMemoryBroker) -> None:
    producer = EventProducer(KafkaSettings(), service="registry", driver=broker.producer())
    await producer.start()
    relay = OutboxRelay(world.registry.outbox, KafkaPublisher(producer))
    while await relay.relay_once():
        pass


async def test_each_action_continues_the_trace_of_its_canary_and_traces_are_not_mixed(
        spans: InMemorySpanExporter) -> None:
    world = World()
    started = {model: await start_canary(world, model) for model in LIVE}
    controller = controller_from(settings(rollout={"min_samples": 100}), world.h.deps, LiveQuality(world))
    spans.clear()
    with trace.get_tracer("test").start_as_current_span("tick"):  # a tick's own context is never inherited
        for _ in range(4):
            await controller.tick()
    await relay_all(world, InMemoryBroker())

    good, bad = rollout_spans(spans, "good"), rollout_spans(spans, "bad")
    assert [s.name for s in good] == ["rollout step", "rollout step", "rollout promote"]
    assert [s.name for s in bad] == ["rollout rollback"]
    assert rollout_spans(spans, "quiet") == []  # holding makes no span
    for model, acted in (("good", good), ("bad", bad)):
        canary = started[model]
        assert canary is not None
        assert {s.context.trace_id for s in acted} == {canary.trace_id}
        # canary start -> step -> step -> promote: each action the child of the change it acted on
        parents = [canary.span_id, *(s.context.span_id for s in acted[:-1])]
        assert [s.parent.span_id for s in acted if s.parent] == parents
        assert acted[0].parent is not None and acted[0].parent.is_remote
        for action in acted:  # its events are sent inside it
            sends = [s for s in spans.get_finished_spans() if s.name == "send loopline.models.v1"
                     and s.parent is not None and s.parent.span_id == action.context.span_id]
            assert sends and all(s.context.trace_id == canary.trace_id for s in sends)
        entries, _ = await world.h.list_audit(READER, AuditFilter(model=model), Page(500))
        ours = [e for e in entries if e.actor == "rollout-controller"]
        assert ours and {e.trace_id for e in ours} == {format(canary.trace_id, "032x")}
    assert good[-1].attributes["rollout.deployment_revision"] == 3
    assert "promoting" in str(good[-1].attributes["loopline.reason"])
    assert (await world.h.resolve_alias(READER, "good", "champion")).version == 2


async def test_a_canary_started_without_a_trace_gets_a_new_trace_per_action(spans: InMemorySpanExporter) -> None:
    world = World()
    await start_canary(world, "bad", traced=False)
    await start_canary(world, "good", traced=False)
    controller = controller_from(settings(rollout={"min_samples": 100}), world.h.deps, LiveQuality(world))
    spans.clear()
    with trace.get_tracer("test").start_as_current_span("tick") as tick:
        await controller.tick()
    acted = rollout_spans(spans, "bad") + rollout_spans(spans, "good")
    assert [s.name for s in acted] == ["rollout rollback", "rollout step"]
    assert all(s.parent is None for s in acted)
    traces = {s.context.trace_id for s in acted}
    assert len(traces) == 2 and tick.get_span_context().trace_id not in traces
    entries, _ = await world.h.list_audit(READER, AuditFilter(model="bad", action="deployment.changed"), Page(500))
    assert entries[-1].trace_id == format(acted[0].context.trace_id, "032x")


async def test_a_shadow_evaluation_stays_in_the_trace_of_its_canary_request(spans: InMemorySpanExporter) -> None:
    world = World()
    canary = await start_canary(world, "good")
    assert canary is not None
    cfg = settings(rollout={"min_samples": 100, "shadow_models": ["good"]})
    controller = controller_from(cfg, world.h.deps, LiveQuality(world))
    spans.clear()
    await controller.tick()
    await controller.tick()
    acted = rollout_spans(spans, "good")
    assert [s.name for s in acted] == ["rollout shadow", "rollout promote"]
    assert {s.context.trace_id for s in acted} == {canary.trace_id}
    assert [s.parent.span_id for s in acted if s.parent] == [canary.span_id, acted[0].context.span_id]


def test_the_tracing_module_examples_hold() -> None:
    assert doctest.testmod(tracing).failed == 0
