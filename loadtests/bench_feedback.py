"""Feedback-collector benchmark: sustained joins per second, and the latency from a label's
arrival (its broker ack on loopline.feedback.v1) to its LabeledPrediction on loopline.labeled.v1.

Starts Kafka and PostgreSQL (loopline_cli.stack, test configuration) and the collector as a
subprocess; for each offered rate (BENCH_FEEDBACK_RATE, default 2000,5000,6000 labels/s)
preloads rate x BENCH_FEEDBACK_SECONDS predictions (default 25 s; BENCH_FEEDBACK_N fixes the
count instead), then sends their labels at that rate (paced in 20 ms ticks) for that long,
a sustained run, while a consumer timestamps the joins. Reported per run: joins/s, p50/p99/max
latency, the collector's mean handler time per phase, and the CPU microseconds per join of the
collector, Kafka, PostgreSQL and this bench (it shares the machine), plus the machine's busy cores.
Writes $BENCH_OUT/feedback.json (default .run/bench/): every run and the medians.

Baseline in the same run: BENCH_FEEDBACK_BASELINE=<dir> names a directory put first on the
collector's PYTHONPATH (e.g. copies of main's loopline_feedback_collector and loopline_core);
every rate then runs the baseline and the current collector alternately, BENCH_FEEDBACK_REPEAT
times each (default 3), on the same Kafka and PostgreSQL; the medians and the current/baseline
ratios are printed. BENCH_FEEDBACK_BASELINE_ENV="NAME=value,..." sets environment variables
of the baseline's collector only (e.g. LOOPLINE_JOIN__POLL_TOP_UP_MS=0); alone, without
BENCH_FEEDBACK_BASELINE, the baseline is the current code with those settings.

BENCH_FEEDBACK_LOCK=<file> (e.g. /tmp/loopline-bench.lock, on a shared machine) takes an
exclusive flock on the file for the stack's start and for each baseline + current pair of runs
only, so that no one holding of the lock is long; do not also wrap the command in ``flock``.
BENCH_FEEDBACK_REPLICAS=<k> (default 1) runs k collectors in one consumer group (scale-out:
each joins its share of the partitions); CPU per join then sums them.
BENCH_FEEDBACK_PYSPY=<dir>: record each run's label phase with py-spy (on PATH or /tmp/pyspy).

Its parts in loadtests/feedback/: process.py (the collector subprocess), events.py (a
prediction and its label), meter.py (the collectors' metrics, CPU per part), report.py
(percentiles, medians, ratios); this file is the workload and the runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from loopline_core.kafka.cloudevents import encode, new_event
from loopline_core.kafka.producer import EventProducer, Outgoing, kafka_producer
from loopline_core.kafka.topics import FEEDBACK, LABELED, PREDICTIONS
from loopline_core.settings import KafkaSettings

from loadtests.feedback.events import label, prediction
from loadtests.feedback.meter import CpuMeter, collector_metrics, phase_means
from loadtests.feedback.process import CollectorProcess, start_collector
from loadtests.feedback.report import medians, pct, ratios


async def bench(bootstrap: str, dsn: str, root: Path, n: int, rate: int,
                python_path: str | None = None, stack_marker: str = "",
                extra_env: dict[str, str] | None = None, replicas: int = 1) -> dict[str, object]:
    model = f"bench-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "LOOPLINE_POSTGRES_SCHEMA": f"fb_{uuid.uuid4().hex[:8]}", "LOOPLINE_POSTGRES__DSN": dsn,
           "LOOPLINE_KAFKA__BOOTSTRAP_SERVERS": bootstrap, "LOOPLINE_RUN_DIR": str(root),
           "LOOPLINE_TELEMETRY__LOCAL_TRACE_DIR": str(root / "traces"), **(extra_env or {})}
    if python_path:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [python_path, env.get("PYTHONPATH")]))
    profile = os.environ.get("BENCH_FEEDBACK_PROFILE")  # a path: run the collector under cProfile
    command = [sys.executable, *(["-m", "cProfile", "-o", profile] if profile else []),
               "-m", "loopline_feedback_collector"]
    # Replicas: one consumer group (range assignment), each with its share of the partitions.
    collectors: list[CollectorProcess] = []
    producer = EventProducer(KafkaSettings(bootstrap_servers=bootstrap), service="bench-feedback")
    consumer = AIOKafkaConsumer(LABELED, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="latest")
    driver = None
    try:
        for index in range(replicas):
            collectors.append(await start_collector(command, env, root / f"collector-{index}.log"))
        ports = [c.http_port for c in collectors]
        await producer.start()
        await consumer.start()
        await consumer.seek_to_end()
        ids = [str(uuid.uuid4()) for _ in range(n)]
        for start in range(0, n, 2000):
            await producer.send_batch(PREDICTIONS, [Outgoing(pid, prediction(model, pid)) for pid in ids[start:start + 2000]])
        # Wait until the collector has stored every prediction: what follows times the labels' joins.
        async with asyncio.timeout(180):
            while sum((await collector_metrics(ports, "feedback_predictions_total")).values()) < n:
                await asyncio.sleep(0.2)
        sent_at: dict[str, float] = {}
        joined_at: dict[str, float] = {}
        # The labels are encoded (CloudEvents over protobuf, as EventProducer writes them)
        # before the clock starts, and sent through the driver: the load generator shares
        # the machine, so its CPU per label is kept small (and reported).
        labels = [(pid.encode(), *encode(new_event(label(pid), source=producer.source))) for pid in ids]
        driver = kafka_producer(KafkaSettings(bootstrap_servers=bootstrap), client_id="bench-feedback-labels")
        await driver.start()
        model_key = model.encode()

        async def collect() -> None:
            while len(joined_at) < n:
                batch = await consumer.getmany(timeout_ms=200, max_records=5000)
                now = time.perf_counter()
                for records in batch.values():
                    for record in records:
                        if record.key == model_key:
                            for name, value in record.headers:
                                if name == "ce_subject":
                                    joined_at.setdefault(value.decode(), now)
                                    break

        collector = asyncio.create_task(collect())
        tick = 0.02
        per_tick = max(1, int(rate * tick))
        cpu = CpuMeter([c.proc.pid for c in collectors], stack_marker or str(root.parent))
        spy = _py_spy(collectors[0].proc.pid, n / rate + 2, python_path or extra_env)
        before = await collector_metrics(ports, "feedback_batch_")
        cpu.start()
        started = time.perf_counter()
        sends = []
        for index, start in enumerate(range(0, n, per_tick)):
            chunk = ids[start:start + per_tick]
            futures = [await driver.send(FEEDBACK, value=value, key=key, headers=headers)
                       for key, value, headers in labels[start:start + per_tick]]

            async def send(chunk: list[str] = chunk, futures: list[asyncio.Future[object]] = futures) -> None:
                await asyncio.gather(*futures)
                acked = time.perf_counter()
                for pid in chunk:
                    sent_at[pid] = acked

            sends.append(asyncio.create_task(send()))
            delay = started + (index + 1) * tick - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        await asyncio.gather(*sends)
        sending_s = time.perf_counter() - started
        await asyncio.wait_for(collector, timeout=120)
        spent = cpu.per_join(n)
        if spy is not None:
            spy.wait(timeout=60)
        total_s = max(joined_at.values()) - started
        after = await collector_metrics(ports, "feedback_batch_")
        metrics = {name: value - before.get(name, 0.0) for name, value in after.items()}  # the label phase
        batches = metrics.get("feedback_batch_seconds_count", 0.0)
        latencies = [(joined_at[pid] - sent_at[pid]) * 1000 for pid in ids if pid in joined_at and pid in sent_at]
        return {"labels": n, "offered_rate": rate, "replicas": replicas, "sending_s": round(sending_s, 2),
                "joins_per_s": round(n / total_s), "p50_ms": round(statistics.median(latencies), 1),
                "p99_ms": round(pct(latencies, 0.99), 1), "max_ms": round(max(latencies), 1),
                "handler_calls": int(batches),
                "handler_ms_mean": round(1000 * metrics.get("feedback_batch_seconds_sum", 0.0) / max(batches, 1), 1),
                **phase_means(metrics), **spent}
    finally:
        if driver is not None:
            await driver.stop()
        await consumer.stop()
        await producer.stop()
        for started in collectors:
            started.stop()


def _py_spy(pid: int, seconds: float, variant: object) -> subprocess.Popen[bytes] | None:
    """py-spy on the collector for the label phase, when BENCH_FEEDBACK_PYSPY names a folder."""
    folder = os.environ.get("BENCH_FEEDBACK_PYSPY")
    if not folder:
        return None
    spy = shutil.which("py-spy") or "/tmp/pyspy/bin/py-spy"
    Path(folder).mkdir(parents=True, exist_ok=True)
    name = f"{'baseline' if variant else 'current'}-{pid}"
    return subprocess.Popen([spy, "record", "--pid", str(pid), "--duration", str(int(seconds) + 1), "--rate", "200",
                             "--format", "raw", "--output", str(Path(folder) / f"{name}.txt")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@contextlib.contextmanager
def _held(lock: str | None):  # type: ignore[no-untyped-def]
    """An exclusive flock on ``lock`` (when given) while the block runs."""
    if not lock:
        yield
        return
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def main() -> int:
    from loopline_cli.stack import Stack, StackConfig

    fixed_n = os.environ.get("BENCH_FEEDBACK_N")
    seconds = float(os.environ.get("BENCH_FEEDBACK_SECONDS", "25"))
    rates = [int(r) for r in os.environ.get("BENCH_FEEDBACK_RATE", "2000,5000,6000").split(",")]
    baseline = os.environ.get("BENCH_FEEDBACK_BASELINE")
    repeat = int(os.environ.get("BENCH_FEEDBACK_REPEAT", "3"))
    lock = os.environ.get("BENCH_FEEDBACK_LOCK")
    replicas = int(os.environ.get("BENCH_FEEDBACK_REPLICAS", "1"))
    baseline_env = dict(item.split("=", 1) for item in os.environ.get("BENCH_FEEDBACK_BASELINE_ENV", "").split(",")
                        if item)
    variants = [("baseline", baseline), ("current", None)] if baseline or baseline_env else [("current", None)]
    out = Path(os.environ.get("BENCH_OUT", ".run/bench"))
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="bench-feedback-") as tmp:
        stack = Stack(StackConfig.for_tests(Path(tmp) / "stack"))
        try:
            with _held(lock):
                stack.ensure("kafka")
                stack.ensure("postgres")
            for rate in rates:
                n = int(fixed_n) if fixed_n else int(rate * seconds)
                for attempt in range(repeat):
                    # Alternate which variant goes first, so neither always meets a fresher broker.
                    order = variants if attempt % 2 == 0 else variants[::-1]
                    with _held(lock):
                        for variant, python_path in order:
                            run = Path(tmp) / f"run-{rate}-{attempt}-{variant}"
                            run.mkdir()
                            row = asyncio.run(bench(
                                stack.config.kafka_bootstrap, stack.config.postgres_dsn, run, n, rate, python_path,
                                stack_marker=str(Path(tmp) / "stack"),
                                extra_env=baseline_env if variant == "baseline" else None, replicas=replicas))
                            rows.append({"variant": variant, "attempt": attempt, **row})
                            print(json.dumps(rows[-1]), flush=True)
        finally:
            stack.down()
    summary = medians(rows)
    for row in summary:
        print("median", json.dumps(row))
    compared = ratios(summary)
    for row in compared:
        print("ratio", json.dumps(row))
    out.mkdir(parents=True, exist_ok=True)
    (out / "feedback.json").write_text(json.dumps({"results": rows, "medians": summary, "ratios": compared}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
