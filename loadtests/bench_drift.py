"""`make bench-drift`: the detector layer on seeded streams with known change points,
and the whole service on a real Kafka and PostgreSQL.

Per detector and for the default configuration: median detection delay in samples
after the change (many seeds), false alarms per 100k stationary samples, updates/s
on one core; then whole-model scenarios (covariate shift on one feature, a concept
switch with unchanged inputs) and events/s through a ``ModelMonitor``; then events/s
per core through the service, Kafka included, with its in-process baselines
(``loadtests.drift.service``). The targets of issue 6 are checked on the default
configuration; the exit status is 1 if one is missed.

Writes JSON to $BENCH_OUT (default .run/bench/drift.json; a directory gets
drift.json inside). Knobs: BENCH_DRIFT_QUICK=1 (a smoke run without the slow
river detectors, about a minute on an idle machine),
BENCH_DRIFT_SCALE (seeds and samples; default 0.3, 0.05 when quick),
BENCH_DRIFT_PREDICTIONS (predictions through the service, plus a label for every
second one; default 40000, 6000 when quick), BENCH_DRIFT_SERVICE=0 (skip the
service), BENCH_DRIFT_PROFILE=<path> (cProfile the served process), BENCH_WORKERS
(default 2).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import river

from loadtests.drift import measure, scenarios, service
from loadtests.drift.cases import CASES

#: Seeds for the delays and stationary samples for the false alarms, by how fast a case runs.
BUDGET = {"slow": (12, 10_000), "medium": (100, 200_000), "fast": (100, 1_000_000), "default": (300, 2_000_000)}
SLOW = {"numeric/kswin"}
MEDIUM = {"numeric/adwin(clock=1)"}
TARGETS = [  # (what, case, figure, limit): at most the limit
    ("abrupt 1σ mean shift: median delay", "numeric/DEFAULT", ("abrupt_1sigma", "median_delay"), 50),
    ("error rate 0.2 → 0.5: median delay", "error/DEFAULT", ("error_0.2_to_0.5", "median_delay"), 60),
    ("numeric false alarms per 100k", "numeric/DEFAULT", ("false_alarms", "per_100k"), 1),
    ("categorical false alarms per 100k", "categorical/DEFAULT", ("false_alarms", "per_100k"), 1),
    ("error-stream false alarms per 100k", "error/DEFAULT", ("false_alarms", "per_100k"), 1),
]
#: At least this many events/s per core through the service, Kafka included.
SERVICE_TARGET = 20_000


def _plan(scale: float, cases: list[str]) -> list[tuple[Any, ...]]:
    tasks: list[tuple[Any, ...]] = []
    for case in cases:
        kind, spec = CASES[case]
        cost = "slow" if case in SLOW else "medium" if case in MEDIUM else "default" if spec is None else "fast"
        seeds, samples = max(5, int(BUDGET[cost][0] * scale)), int(BUDGET[cost][1] * scale)
        for scenario, (scenario_kind, _) in measure.SCENARIOS.items():
            if scenario_kind == kind:
                tasks.append(("delay", case, scenario, seeds, 3000 if scenario.startswith("sea") else 2000))
        tasks.append(("false_alarms", case, samples))
    tasks.append(("covariate_shift", max(5, int(50 * scale))))
    tasks.append(("concept_switch", max(5, int(30 * scale))))
    return sorted(tasks, key=lambda t: t[0] != "false_alarms")  # longest first


def _run(task: tuple[Any, ...]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    what, *args = task
    if what == "delay":
        return task, measure.delays(*args)
    if what == "false_alarms":
        return task, measure.false_alarms(*args)
    return task, getattr(scenarios, what)(*args)


def _output_path() -> Path:
    raw = os.environ.get("BENCH_OUT", ".run/bench/drift.json")
    out = Path(raw)
    return out / "drift.json" if out.is_dir() or raw.endswith("/") else out


def main() -> int:
    quick = os.environ.get("BENCH_DRIFT_QUICK", "") == "1"
    scale = float(os.environ.get("BENCH_DRIFT_SCALE", "0.05" if quick else "0.3"))
    predictions = int(os.environ.get("BENCH_DRIFT_PREDICTIONS", "6000" if quick else "40000"))
    with_service = os.environ.get("BENCH_DRIFT_SERVICE", "1") != "0"
    workers = int(os.environ.get("BENCH_WORKERS", "2"))
    started = time.perf_counter()
    # A quick run leaves out the slow river detectors (KSWIN, ADWIN with clock 1).
    cases = [c for c in CASES if not (quick and c in SLOW | MEDIUM)]
    detectors: dict[str, dict[str, Any]] = {case: {} for case in cases}
    whole_model: dict[str, Any] = {}
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for task, result in pool.map(_run, _plan(scale, cases)):
            if task[0] == "delay":
                detectors[task[1]][task[2]] = result
            elif task[0] == "false_alarms":
                detectors[task[1]]["false_alarms"] = result
            else:
                whole_model[task[0]] = result
    for case in cases:  # alone, after the pool: one core, nothing else running
        size = 2_000 if case in SLOW else 5_000 if case in MEDIUM else 5_000 if quick else 20_000
        detectors[case]["updates_per_s"] = measure.updates_per_second(case, size)
    whole_model["throughput"] = [scenarios.monitor_events_per_second(n, c) for n, c in ((1, 0), (4, 1), (10, 0))]
    targets = [_target(what, detectors[case], figure, limit) for what, case, figure, limit in TARGETS]
    through_service = None
    if with_service:
        try:
            through_service = service.measure(predictions)
            per_core = through_service["service_kafka"]["events_per_cpu_s"]
        except Exception as exc:  # noqa: BLE001 - reported as a missed target, with the detector figures kept
            through_service, per_core = {"error": f"{type(exc).__name__}: {exc}"}, None
        targets.append({"target": "events/s per core through the service, Kafka included", "value": per_core,
                        "limit": SERVICE_TARGET, "at_least": True,
                        "pass": per_core is not None and per_core >= SERVICE_TARGET})
    report = {
        "meta": {"python": platform.python_version(), "river": river.__version__, "numpy": np.__version__,
                 "cpus": os.cpu_count(), "load_average": os.getloadavg(), "workers": workers, "scale": scale,
                 "quick": quick, "n_before_change": measure.N_BEFORE,
                 "elapsed_s": round(time.perf_counter() - started, 1),
                 "delay": "samples seen after the change up to and including the firing one",
                 "per_core": "events / CPU-seconds (user + system) of the process that handles them"},
        "detectors": detectors, "whole_model": whole_model, "service": through_service, "targets": targets,
    }
    path = _output_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, sort_keys=False))
    _print(report, path)
    return 0 if all(t["pass"] for t in targets) else 1


def _target(what: str, row: dict[str, Any], figure: tuple[str, str], limit: float) -> dict[str, Any]:
    value = row[figure[0]][figure[1]]
    return {"target": what, "value": value, "limit": limit, "pass": value is not None and value <= limit}


def _print(report: dict[str, Any], path: Path) -> None:
    def cell(row: dict[str, Any], scenario: str) -> str:
        r = row.get(scenario)
        if r is None:
            return "-"
        delay = "miss" if r["median_delay"] is None else f"{r['median_delay']:g}"
        return delay + (f" ({r['missed']} miss)" if r["missed"] and r["median_delay"] is not None else "")

    columns = list(measure.SCENARIOS)
    print(f"{'case':<52}" + "".join(f" {c[:16]:>16}" for c in columns) + f"{'FA/100k':>10}{'updates/s':>11}")
    for case, row in report["detectors"].items():
        print(f"{case:<52}" + "".join(f" {cell(row, c):>16}" for c in columns)
              + f"{row['false_alarms']['per_100k']:>10g}{row['updates_per_s']:>11}")
    for name, result in report["whole_model"].items():
        print(f"{name}: {result}")
    if report["service"] is not None:
        for name, result in report["service"].items():
            print(f"service {name}: {result}")
    for t in report["targets"]:
        bound = "at least" if t.get("at_least") else "limit"
        print(f"{'PASS' if t['pass'] else 'FAIL'}  {t['target']}: {t['value']} ({bound} {t['limit']})")
    print(f"wrote {path} in {report['meta']['elapsed_s']} s")


if __name__ == "__main__":
    sys.exit(main())
