"""The closed loop on a running stack: bootstrap a model, replay a stream with a concept change, report.

``run_loop`` is what ``loopline demo`` runs after the stack is up, and what the
end-to-end tests run (shorter). The stream comes from a source spec
(``loop/sources.py``): its first ``bootstrap`` records become the first
model's training set (JSONL under the run directory, trained by the trainer
over gRPC); the rest is sent through the gateway at ``rate_hz`` with labels
``label_delay_s`` later, while the platform is left alone to detect the change,
retrain, canary and promote.
"""

from __future__ import annotations

import itertools
import time
import math
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import grpc

from loopline_cli.loop.platform import Bootstrapped, PlatformWatcher, Timeline, bootstrap_model, read_admin_key
from loopline_cli.loop.registry import Registry
from loopline_cli.loop.report import Summary, accuracy_series, png_chart, summarize, text_chart
from loopline_cli.loop.scenario import Run, run_scenario
from loopline_cli.loop.sources import Record, SourceError, Synthetic, open_source, write_jsonl
from loopline_cli.loop.traffic import FeedbackClient, GatewayClient
from loopline_cli.stack.config import StackConfig
from loopline_cli.stack.ports import HOST

#: The default stream: 1000 records to bootstrap on, ~30 s of live traffic on the same
#: concept at 20/s, then the new concept for up to ~180 s.
DEFAULT_SOURCE = "synthetic:seed=7,n=5200,switch=1600"
#: Targets of issue 7.
TARGET_RECOVERY_S = 120.0
TOLERANCE = 0.03


@dataclass(frozen=True)
class LoopOptions:
    source: str = DEFAULT_SOURCE
    #: Records at the head of the source that train the first model (all before the change).
    bootstrap: int = 1000
    #: Index in the source where the concept changes; a synthetic source knows its own (``switch``).
    change_at: int | None = None
    rate_hz: float = 20.0
    label_delay_s: float = 2.0
    #: Measuring time after the new champion reached 100%.
    after_s: float = 25.0
    #: The scenario ends here at the latest (seconds from its start).
    max_seconds: float = 240.0
    #: Requests still in flight on the old split right after the promotion are left out of "after".
    settle_s: float = 2.0
    bucket_s: float = 4.0
    #: Model name; by default a fresh ``demo-<hex>`` so runs never meet an earlier run's versions.
    model: str | None = None
    #: Retire the deployments of earlier runs' ``demo-<hex>`` models first (they stop taking Triton's memory).
    retire_earlier: bool = True


@dataclass
class LoopResult:
    model: str
    boot: Bootstrapped
    run: Run
    summary: Summary
    timeline: Timeline
    series: list[tuple[float, float, int]]
    chart: str
    png: Path | None
    rollout_audit: list[str] = field(default_factory=list)

    @property
    def trace_id(self) -> str:
        return self.timeline.retrain_trace_id

    def since_change(self, monotonic: float | None) -> float | None:
        if monotonic is None or self.run.change_s is None:
            return None
        return monotonic - self.run.began - self.run.change_s

    @property
    def recovered(self) -> bool:
        return self.summary.recovered

    @property
    def within_target(self) -> bool:
        return self.summary.recovery_s is not None and self.summary.recovery_s <= TARGET_RECOVERY_S


def split_source(options: LoopOptions) -> tuple[list[Record], Iterator[Record], int]:
    """(bootstrap records, live records, index of the change in the live part)."""
    source = open_source(options.source)
    change_at = options.change_at
    if change_at is None:
        if not isinstance(source, Synthetic):
            raise SourceError(f"say where the concept of {options.source!r} changes: --change-at <record index>")
        change_at = source.switch
    if options.bootstrap < 1:
        raise SourceError(f"--bootstrap must be at least 1 record, got {options.bootstrap}")
    if change_at < options.bootstrap:
        raise SourceError(f"the change (record {change_at}) must come after the {options.bootstrap} bootstrap "
                          f"records: the first model learns the concept before the change")
    records: Iterator[Record] = iter(source)
    head = list(itertools.islice(records, options.bootstrap))
    if len(head) < options.bootstrap:
        raise SourceError(f"{options.source!r} has only {len(head)} records; {options.bootstrap} are needed "
                          f"to bootstrap and more to replay")
    return head, records, change_at - options.bootstrap


def _fmt(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:+.1f}s"


async def _retire_earlier(registry: Registry, model: str, out: TextIO) -> None:
    try:
        earlier = await registry.retire_earlier_demos(keep=model)
    except grpc.aio.AioRpcError as exc:  # housekeeping: the run goes on without it
        print(f"demo: earlier demo models not retired ({exc.code().name}: {exc.details()})", file=out, flush=True)
        return
    if earlier:
        print(f"demo: retired the deployments of {len(earlier)} earlier demo model(s), so the gateway and Triton "
              f"let them go: {', '.join(sorted(earlier))}", file=out, flush=True)


async def run_loop(config: StackConfig, options: LoopOptions, out: TextIO) -> LoopResult:
    """Runs the loop on the stack of ``config`` (already up); progress goes to ``out``."""
    model = options.model or f"demo-{uuid.uuid4().hex[:6]}"
    head, live, change_at = split_source(options)
    names = list(head[0].features)
    folder = config.run_dir / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    dataset = folder / f"{model}.bootstrap.jsonl"
    write_jsonl(head, dataset)
    print(f"demo: model {model!r}: {len(head)} records before the change written to {dataset}", file=out, flush=True)

    registry = Registry(f"{HOST}:{config.port('registry-grpc')}", read_admin_key(config.run_dir))
    gateway = GatewayClient(model, f"{HOST}:{config.port('serving-gateway-grpc')}",
                            f"http://{HOST}:{config.port('serving-gateway-http')}", names)
    feedback = FeedbackClient(f"{HOST}:{config.port('feedback-collector-grpc')}")
    watcher: PlatformWatcher | None = None
    try:
        if options.retire_earlier:
            await _retire_earlier(registry, model, out)
        boot = await bootstrap_model(model=model, dataset=dataset, trainer_target=f"{HOST}:{config.port('trainer-grpc')}",
                                     registry=registry, gateway=gateway, probe=head[0])
        print(f"demo: v{boot.version} trained by the trainer in {boot.train_s:.1f}s (holdout accuracy "
              f"{boot.accuracy:.3f}), champion at 100% and serving through the gateway {boot.ready_s:.1f}s later",
              file=out, flush=True)
        watcher = PlatformWatcher(model=model, bootstrap_servers=config.kafka_bootstrap, registry=registry,
                                  bootstrap_version=boot.version,
                                  say=lambda line: print(f"demo: {line}", file=out, flush=True))
        await watcher.start()
        print(f"demo: live scenario: {options.rate_hz:g} requests/s (gRPC and REST), labels {options.label_delay_s:g}s "
              f"later; the concept changes after {change_at} records (~{change_at / options.rate_hz:.0f}s), "
              f"unannounced", file=out, flush=True)
        run = await run_scenario(_announce(live, change_at, out, watcher), gateway=gateway, feedback=feedback, watcher=watcher,
                                 rate_hz=options.rate_hz, label_delay_s=options.label_delay_s, change_at=change_at,
                                 initial_champion=boot.version, stop_after_recovery_s=options.after_s,
                                 max_seconds=options.max_seconds)
        audit = []
        try:
            for entry in await registry.audit(model):
                if entry.actor == "rollout-controller":
                    audit.append(f"{entry.action}: {entry.reason}")
        except Exception as exc:  # noqa: BLE001 - the audit is extra detail in the report
            audit.append(f"(audit log not read: {exc})")
    finally:
        if watcher is not None:
            await watcher.stop()
        await gateway.close()
        await feedback.close()
        await registry.close()

    change_s = run.change_s if run.change_s is not None else math.inf
    summary = summarize(run.outcomes, change_s=change_s, detected_s=run.detected_s, promoted_s=run.promoted_s,
                        tolerance=TOLERANCE, settle_s=options.settle_s)
    series = accuracy_series(run.outcomes, options.bucket_s) if run.outcomes else []
    marks = {"change": change_s} if run.change_s is not None else {}
    if run.detected_s is not None:
        marks["drift"] = run.detected_s
    if run.promoted_s is not None:
        marks[f"v{run.new_champion} at 100%"] = run.promoted_s
    chart = text_chart(series, marks=marks, bucket_s=options.bucket_s)
    png = folder / f"{model}.png"
    drawn = png_chart(series, png, marks) if series else False
    return LoopResult(model, boot, run, summary, watcher.timeline if watcher else Timeline(), series, chart,
                      png if drawn else None, audit)


def _announce(records: Iterable[Record], change_at: int, out: TextIO, watcher: PlatformWatcher) -> Iterator[Record]:
    for i, record in enumerate(records):
        if i == change_at:
            watcher.change_at = time.monotonic()
            print(f"demo: {0:+6.1f}s the concept changes now (no service is told)", file=out, flush=True)
        yield record


def render_report(result: LoopResult, run_dir: Path) -> str:
    s, run, t = result.summary, result.run, result.timeline
    lines = ["", f"=== loopline demo report: model {result.model} ===",
             f"requests {run.requests} (gRPC and REST alternately), labels sent {run.labels_sent}, "
             f"errors {len(run.errors)}"]
    lines += [f"accuracy per {result.series[1][0] - result.series[0][0]:g}s bucket" if len(result.series) > 1
              else "accuracy over time", result.chart]
    lines.append(f"accuracy  before {s.before:.3f}   during {s.during:.3f}   after {s.after:.3f}"
                 f"   (recovered when after >= before - {TOLERANCE:.2f})")
    detector = f" ({t.drift.detector} on v{t.drift.version}, {_kind(t.drift.kind)})" if t.drift else ""
    lines.append(f"detection delay          {_secs(s.detection_delay_s)}{detector}")
    lines.append(f"change -> new champion   {_secs(s.recovery_s)}"
                 + (f" (v{run.new_champion} at 100%; target <= {TARGET_RECOVERY_S:.0f}s: "
                    f"{'met' if result.within_target else 'MISSED'})" if run.new_champion else ""))
    steps = [f"retrain requested {_fmt(result.since_change(t.retrain_at))}",
             f"training {_fmt(result.since_change(t.training_started_at))} .. "
             f"{_fmt(result.since_change(t.training_completed_at))}"]
    if t.completed is not None:
        steps.append(f"v{t.completed.version} registered, gate {'passed' if t.completed.gate_passed else 'REFUSED'}"
                     + (f": {t.completed.gate_reason}" if t.completed.gate_reason and not t.completed.gate_passed
                        else ""))
    if t.failed is not None:
        steps.append(f"training FAILED: {t.failed.error}")
    lines.append("the loop (from the change): " + "; ".join(steps))
    if t.deployments:
        lines.append("deployment: " + " -> ".join(
            f"{_fmt(result.since_change(at))} " + "/".join(f"v{v}:{w:g}" for v, w in splits)
            for at, splits in t.deployments))
    for entry in result.rollout_audit:
        lines.append(f"  rollout audit: {entry[:220]}")
    if result.trace_id:
        lines.append(f"retrain chain trace id   {result.trace_id}   "
                     f"(show it: loopline --run-dir {run_dir} trace {result.trace_id})")
    else:
        lines.append("retrain chain trace id   - (no RetrainRequested seen)")
    if result.png is not None:
        lines.append(f"plot                     {result.png}")
    else:
        lines.append("plot                     - (matplotlib is not installed)")
    for error in run.errors[:5]:
        lines.append(f"  error: {error}")
    if len(run.errors) > 5:
        lines.append(f"  ... and {len(run.errors) - 5} more errors")
    verdict = "RECOVERED" if s.recovered else "NOT RECOVERED"
    why = ""
    if not s.recovered:
        why = (": no new champion reached 100%" if run.promoted_s is None
               else f": accuracy after {s.after:.3f} is more than {TOLERANCE:.2f} below before {s.before:.3f}")
    lines.append(f"=== {verdict}{why} ===")
    return "\n".join(lines)


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


def _kind(kind: int) -> str:
    from loopline.events.v1 import drift_pb2

    try:
        return drift_pb2.DriftKind.Name(kind).removeprefix("DRIFT_KIND_").lower()
    except ValueError:
        return str(kind)


__all__ = ["LoopOptions", "LoopResult", "render_report", "run_loop", "split_source"]
