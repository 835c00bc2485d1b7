"""Before/after throughput of the drift detector service, on one Kafka and PostgreSQL.

    git archive <commit> libs/core/src libs/contracts/src services/drift-detector/src loadtests \\
        | tar -x -C /tmp/drift-base
    uv run --frozen python -m loadtests.drift.compare /tmp/drift-base [PREDICTIONS [ROUNDS [AFTER]]]

Each round runs the old tree (its ``loopline_core``, contracts and drift detector first
on ``PYTHONPATH``, its own ``loadtests`` for the in-process baselines) and then this
one, on the same events and the same broker, so both see the same load; it prints
every run and the medians (events per CPU-second of the service process, wall rate).
AFTER (optional): another tree made the same way, run instead of this one (so that
this checkout may change while the comparison runs).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from loadtests.drift import service, workload

IN_PROCESS = """
import asyncio, json
from loadtests.drift import service, workload
events = workload.stream({n})
print(json.dumps({{"alone": asyncio.run(service.detect_handler_run(events))["events_per_cpu_s"],
                  "in_memory": asyncio.run(service.in_memory_run(events))["events_per_cpu_s"]}}))
"""


def main() -> int:
    from loopline_cli.stack import Stack, StackConfig

    base = Path(sys.argv[1]).resolve()
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 40000
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    after = Path(sys.argv[4]).resolve() if len(sys.argv) > 4 else None

    def tree(root: Path) -> str:
        return os.pathsep.join(str(root / p) for p in ("libs/core/src", "libs/contracts/src",
                                                      "services/drift-detector/src"))

    paths = {"before": tree(base), "after": tree(after) if after else ""}
    cwd = {"before": str(base), "after": str(after or Path.cwd())}
    events = workload.stream(n)
    home = os.getcwd()
    runs: dict[str, dict[str, list[float]]] = {v: {"alone": [], "in_memory": [], "kafka": [], "wall": []}
                                               for v in paths}
    with tempfile.TemporaryDirectory(prefix="drift-compare-") as tmp:
        stack = Stack(StackConfig.for_tests(Path(tmp) / "stack"))
        try:
            kafka = stack.ensure("kafka")
            stack.ensure("postgres")
            for r in range(rounds):
                for variant, path in paths.items():
                    env = {**os.environ, "PYTHONPATH": path}
                    out = subprocess.run([sys.executable, "-c", IN_PROCESS.format(n=n)], cwd=cwd[variant], env=env,
                                         capture_output=True, text=True, check=True)
                    local = json.loads(out.stdout.strip().splitlines()[-1])
                    os.environ["PYTHONPATH"] = path  # the served process inherits it,
                    os.chdir(cwd[variant])  # and runs its own tree's loadtests.drift.serve
                    try:
                        k = asyncio.run(service.kafka_run(stack.config.kafka_bootstrap, stack.config.postgres_dsn,
                                                          Path(tmp) / f"run-{r}-{variant}", events,
                                                          broker_pid=kafka.pid))
                    finally:
                        os.environ.pop("PYTHONPATH")
                        os.chdir(home)
                    runs[variant]["alone"].append(local["alone"])
                    runs[variant]["in_memory"].append(local["in_memory"])
                    runs[variant]["kafka"].append(k["events_per_cpu_s"])
                    runs[variant]["wall"].append(k["events_per_s_wall"])
                    print(r, variant, local, k, flush=True)
        finally:
            stack.down()
    medians = {v: {k: statistics.median(x) for k, x in d.items()} for v, d in runs.items()}
    ratios = {k: round(medians["after"][k] / medians["before"][k], 2) for k in medians["after"]}
    print(json.dumps({"runs": runs, "medians": medians, "ratios": ratios}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
