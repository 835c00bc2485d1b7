"""The feedback benchmark's summary: percentiles, medians over repeats, current/baseline ratios."""

from __future__ import annotations

import statistics


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


#: The figures of a run that get a median and a current/baseline ratio.
KEYS = ("joins_per_s", "p50_ms", "p99_ms", "max_ms", "handler_ms_mean", "collector_cpu_us_per_join",
        "kafka_cpu_us_per_join", "postgres_cpu_us_per_join", "bench_cpu_us_per_join", "machine_busy_cores",
        "other_work_cores")


def ratios(medians: list[dict[str, object]]) -> list[dict[str, object]]:
    """current / baseline of each median, per offered rate."""
    by = {(m["variant"], m["offered_rate"]): m for m in medians}
    out = []
    for (variant, rate), current in by.items():
        base = by.get(("baseline", rate))
        if variant != "current" or base is None:
            continue
        out.append({"offered_rate": rate, **{f"{k}_ratio": round(float(current[k]) / float(base[k]), 2)  # type: ignore[arg-type]
                                            for k in KEYS if float(base[k])}})  # type: ignore[arg-type]
    return out


def medians(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """Per variant and offered rate: the median of each figure over the repeated runs."""
    out = []
    for variant, rate in dict.fromkeys((r["variant"], r["offered_rate"]) for r in rows):
        runs = [r for r in rows if (r["variant"], r["offered_rate"]) == (variant, rate)]
        out.append({"variant": variant, "offered_rate": rate, "runs": len(runs),
                    **{k: statistics.median(float(r[k]) for r in runs) for k in KEYS}})  # type: ignore[arg-type]
    return out
