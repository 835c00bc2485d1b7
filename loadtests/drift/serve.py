"""The drift detector as the benchmark runs it: ``python -m loadtests.drift.serve``.

The service's own ``__main__`` (settings from LOOPLINE_*, logging, tracing, the
service host with both loops and its PostgreSQL checkpoints), except that the
model versions come from ``workload.versions()`` instead of the registry: a
version is looked up once per process, so this leaves the measured path as it is.
"""

from __future__ import annotations

import asyncio
import sys

from loopline_core.heap import settle_heap
from loopline_core.logs import setup_logging
from loopline_core.settings import load
from loopline_core.telemetry import setup_tracing

from loadtests.drift.workload import versions
from loopline_drift_detector.bootstrap import build
from loopline_drift_detector.settings import DriftSettings


def main() -> int:
    settings = load(DriftSettings)
    setup_logging(settings.service_name)
    setup_tracing(settings.service_name, settings.telemetry)
    service = build(settings, versions=versions())
    settle_heap()
    return asyncio.run(service.run())


if __name__ == "__main__":
    sys.exit(main())
