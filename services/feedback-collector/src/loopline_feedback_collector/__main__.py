"""Entrypoint: `loopline-feedback-collector` (or `python -m loopline_feedback_collector`)."""

from __future__ import annotations

import asyncio
import sys

from loopline_core.heap import settle_heap
from loopline_core.logs import setup_logging
from loopline_core.settings import load
from loopline_core.telemetry import setup_tracing

from loopline_feedback_collector.bootstrap import build
from loopline_feedback_collector.settings import FeedbackSettings


def main() -> None:
    settings = load(FeedbackSettings)
    setup_logging(settings.service_name)
    setup_tracing(settings.service_name, settings.telemetry)
    service = build(settings)
    settle_heap()
    sys.exit(asyncio.run(service.run()))


if __name__ == "__main__":
    main()
