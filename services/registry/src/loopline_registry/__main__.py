"""Entrypoint: `loopline-registry` (or `python -m loopline_registry`)."""

from __future__ import annotations

import asyncio
import sys

from loopline_core.logs import setup_logging
from loopline_core.settings import load
from loopline_core.telemetry import setup_tracing

from loopline_registry.bootstrap import build
from loopline_registry.settings import RegistrySettings


def main() -> None:
    settings = load(RegistrySettings)
    setup_logging(settings.service_name)
    setup_tracing(settings.service_name, settings.telemetry)
    sys.exit(asyncio.run(build(settings).run()))


if __name__ == "__main__":
    main()
